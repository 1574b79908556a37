"""Short mp4 segments (H.264 + AAC) of a video made piece by piece, for a player that joins segments into one
stream (Gradio's ``gr.Video(streaming=True)`` re-muxes each into an HTTP Live Streaming segment).

:func:`write_segment` encodes with :class:`~talkinghead.media.VideoWriter`'s settings (x264 yuv420p at its CRF,
AAC at its bit rate, atomic write) and x264's ``tune=zerolatency`` (no B-frames) and ``preset=veryfast`` (as
:class:`~talkinghead.media.FragmentedVideoWriter`), so every segment starts on a keyframe at time 0 and decodes on
its own. mp4, not MPEG-TS: the mp4's edit list records the AAC encoder's priming (1024 samples), so a decoder
returns exactly the speech given; MPEG-TS cannot record it, and a player that decodes segment by segment would
get 64 ms of silence more per segment at 16 kHz (measured). For the same reason a segment should hold whole AAC
frames of speech: :data:`SEGMENT_FRAMES` video frames do.
"""

import math
import os

import numpy as np

from talkinghead.conventions import FPS, FRAME_SAMPLES, SAMPLE_RATE
from talkinghead.media.fragmented_writer import ZERO_LATENCY
from talkinghead.media.video_writer import VideoWriter

#: Samples of one AAC frame.
AAC_FRAME_SAMPLES = 1024
#: Video frames per segment: the most up to 1 s whose speech is whole AAC frames (24 at 25 fps and 16 kHz, 0.96 s
#: = 15 AAC frames), so a segment's speech decodes without end padding and segments join without drift.
SEGMENT_FRAMES = FPS - FPS % (math.lcm(FRAME_SAMPLES, AAC_FRAME_SAMPLES) // FRAME_SAMPLES)


class SegmentWriter(VideoWriter):
    """:class:`~talkinghead.media.VideoWriter` with x264's ``tune=zerolatency``."""

    video_options = ZERO_LATENCY


def write_segment(
    path: str | os.PathLike,
    frames: np.ndarray,
    audio: np.ndarray | None,
    sample_rate: int = SAMPLE_RATE,
    fps: int = FPS,
) -> None:
    """Write uint8 (N, H, W, 3) ``frames`` and their mono float32 speech ``audio`` (None: silent) as one mp4."""
    with SegmentWriter(path, fps, audio, sample_rate) as writer:
        writer.write(frames)
