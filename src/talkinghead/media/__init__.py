"""Video input and output through PyAV (bundled FFmpeg): streaming, bounded memory, atomic writes."""

from talkinghead.media.fragmented_writer import FragmentedVideoWriter
from talkinghead.media.segment_writer import SEGMENT_FRAMES, SegmentWriter, write_segment
from talkinghead.media.video_reader import VideoError, VideoInfo, iter_video_frames, probe_video, sidecar_audio
from talkinghead.media.video_writer import VideoWriter

__all__ = [
    "SEGMENT_FRAMES",
    "FragmentedVideoWriter",
    "SegmentWriter",
    "VideoError",
    "VideoInfo",
    "VideoWriter",
    "iter_video_frames",
    "probe_video",
    "sidecar_audio",
    "write_segment",
]
