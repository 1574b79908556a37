"""Real videos → the shards of the synthetic corpus (``talkinghead-data preprocess``; paper §4.1).

Modules, in pipeline order: :mod:`.discover` (which videos, their identities and shard plan),
:mod:`.tracking` (MediaPipe face tracking and the segmenter that splits or rejects), :mod:`.crop` (where a
segment needs a second fixed FOMM-style crop box), :mod:`.av_sync` (the audio/video offset filter),
:mod:`.clip_builder` (one video → clips with the 3DMM fit),
:mod:`.writer` (resumable, byte-deterministic shards and ``rejected.csv``) and :mod:`.run` (the driver).
"""

from talkinghead.data.preprocess.run import PreprocessSettings, preprocess_videos

__all__ = ["PreprocessSettings", "preprocess_videos"]
