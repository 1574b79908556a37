"""Evaluation of generated talking-head videos (VividTalk §4.1, Table 1): ``talkinghead-evaluate``.

* :mod:`~talkinghead.evaluation.syncnet` — SyncNet network, MFCCs, LSE-D / LSE-C;
* :mod:`~talkinghead.evaluation.fid` — Inception v3 features and the Fréchet distance;
* :mod:`~talkinghead.evaluation.identity` — CSIM with a user-supplied ArcFace-style backbone;
* :mod:`~talkinghead.evaluation.video_metrics` — face track, head pose / HPD, metrics against a reference;
* :mod:`~talkinghead.evaluation.evaluate` — inputs, pairing, seed groups; :mod:`~talkinghead.evaluation.report`.
"""
