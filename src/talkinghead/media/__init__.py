"""Video input and output through PyAV (bundled FFmpeg): streaming, bounded memory, atomic writes."""

from talkinghead.media.fragmented_writer import FragmentedVideoWriter
from talkinghead.media.video_reader import VideoError, VideoInfo, iter_video_frames, probe_video
from talkinghead.media.video_writer import VideoWriter

__all__ = ["FragmentedVideoWriter", "VideoError", "VideoInfo", "VideoWriter", "iter_video_frames", "probe_video"]
