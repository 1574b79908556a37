"""Short MPEG-TS segments (H.264 + AAC) of a video made piece by piece, for players that join segments into one
stream (HTTP Live Streaming, Gradio's ``gr.Video(streaming=True)``).

:func:`write_segment` encodes with :class:`~talkinghead.media.VideoWriter`'s settings (x264 yuv420p at its CRF,
AAC at its bit rate, atomic write), in an MPEG-TS container and with x264's ``tune=zerolatency`` (no B-frames, as
:class:`~talkinghead.media.FragmentedVideoWriter`): every segment starts on a keyframe and decodes on its own.
"""

import os

import numpy as np

from talkinghead.conventions import FPS, SAMPLE_RATE
from talkinghead.media.fragmented_writer import ZERO_LATENCY
from talkinghead.media.video_writer import VideoWriter


class SegmentWriter(VideoWriter):
    """:class:`~talkinghead.media.VideoWriter` writing MPEG-TS (``.ts``) with x264's ``tune=zerolatency``."""

    container_format = "mpegts"
    video_options = ZERO_LATENCY


def write_segment(
    path: str | os.PathLike,
    frames: np.ndarray,
    audio: np.ndarray | None,
    sample_rate: int = SAMPLE_RATE,
    fps: int = FPS,
) -> None:
    """Write uint8 (N, H, W, 3) ``frames`` and their mono float32 speech ``audio`` (None: silent) as one ``.ts``."""
    with SegmentWriter(path, fps, audio, sample_rate) as writer:
        writer.write(frames)
