"""Evaluation of generated talking-head videos (VividTalk §4.1, Table 1): ``talkinghead-evaluate``.

* SyncNet LSE-D / LSE-C: the network, MFCCs and scores live in :mod:`talkinghead.models.syncnet` (the
  preprocessing's A/V-offset filter uses them too), the third-party weight loading in
  :mod:`talkinghead.models.weights`;
* :mod:`~talkinghead.evaluation.fid` — Inception v3 features and the Fréchet distance;
* :mod:`~talkinghead.evaluation.identity` — CSIM with a user-supplied ArcFace-style backbone;
* :mod:`~talkinghead.evaluation.video_metrics` — face track, head pose / HPD, metrics against a reference;
* :mod:`~talkinghead.evaluation.evaluate` — inputs, pairing, seed groups; :mod:`~talkinghead.evaluation.report`.
"""
