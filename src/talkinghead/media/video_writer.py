"""Write an mp4 as frames arrive: H.264 yuv420p video, optional AAC speech, atomic on success.

:class:`VideoWriter` is a context manager. Frames are encoded as soon as :meth:`VideoWriter.write` gets them,
so memory stays bounded whatever the length; the audio (given whole, it is small next to the video) is
encoded in step with the video so the two streams are interleaved. The file is written to a hidden temporary
name in the destination folder and renamed over ``path`` only when the ``with`` block ends without an
exception; on an exception the temporary file is removed and nothing is left at ``path``. The temporary name
is :func:`talkinghead.atomic.temporary_path`'s (``.NAME.part``), so a killed run's leftover is overwritten
by the next write.
"""

import os
from pathlib import Path

import av
import numpy as np

from talkinghead.atomic import temporary_path
from talkinghead.conventions import FPS, SAMPLE_RATE
from talkinghead.media.video_reader import video_error

AAC_BITRATE = 128_000


class VideoWriter:
    """``with VideoWriter(path, fps=25, audio=speech, sample_rate=16000) as out: out.write(frames)``.

    ``video_options``: extra x264 options of a subclass (:class:`~talkinghead.media.FragmentedVideoWriter`).

    Args:
        path: destination ``.mp4``; its folder must exist and be writable (checked on entry).
        fps: constant frame rate.
        audio: mono float32 samples in [-1, 1] to mux as AAC (None: video only). Samples past the last video
            frame are kept, so the audio is never cut short.
        sample_rate: rate of ``audio``.
        crf: x264 constant rate factor (18 ≈ visually lossless).
    """

    video_options: dict[str, str] = {}

    def __init__(
        self,
        path: str | os.PathLike,
        fps: int = FPS,
        audio: np.ndarray | None = None,
        sample_rate: int = SAMPLE_RATE,
        crf: int = 18,
    ):
        self.path = Path(path)
        self.fps = int(fps)
        self.audio = None if audio is None else np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        self.sample_rate = int(sample_rate)
        self.crf = int(crf)
        self.frames_written = 0
        self._audio_written = 0
        self._container = None
        self._video = None
        self._audio_stream = None
        self._temp = None

    def __enter__(self) -> "VideoWriter":
        folder = self.path.parent
        if not folder.is_dir():
            raise video_error(self.path, "output folder does not exist")
        self._temp = temporary_path(self.path)
        try:
            self._container = av.open(str(self._temp), mode="w", format="mp4")
        except (OSError, av.FFmpegError) as error:
            raise video_error(self.path, f"output folder is not writable ({error})") from error
        if self.audio is not None:
            self._audio_stream = self._container.add_stream("aac", rate=self.sample_rate, layout="mono")
            self._audio_stream.bit_rate = AAC_BITRATE
        return self

    def _open_video(self, height: int, width: int) -> None:
        if height % 2 or width % 2:
            raise video_error(self.path, f"frame size {width}x{height} must be even for yuv420p")
        options = {"crf": str(self.crf), **self.video_options}
        self._video = self._container.add_stream("libx264", rate=self.fps, options=options)
        self._video.width, self._video.height, self._video.pix_fmt = width, height, "yuv420p"

    def write(self, frames: np.ndarray) -> None:
        """Encode (H, W, 3) or (N, H, W, 3) uint8 RGB frames, all of one size."""
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
        if self._video is None:
            self._open_video(frames.shape[1], frames.shape[2])
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            self._container.mux(self._video.encode(frame))
            self.frames_written += 1
            self._write_audio(self.frames_written * self.sample_rate // self.fps)

    def _write_audio(self, until: int | None) -> None:
        """Encode the speech up to sample ``until`` (None: all of it)."""
        if self._audio_stream is None:
            return
        end = len(self.audio) if until is None else min(until, len(self.audio))
        if end <= self._audio_written:
            return
        self._encode_audio(self.audio[None, self._audio_written : end])

    def _encode_audio(self, chunk: np.ndarray) -> None:
        """Encode and mux (1, n) mono float32 samples following those already written."""
        frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self._audio_written
        self._container.mux(self._audio_stream.encode(frame))
        self._audio_written += chunk.shape[1]

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            if exc_type is None:
                if self._video is None:
                    raise video_error(self.path, "no frames were written")
                self._write_audio(None)
                self._container.mux(self._video.encode(None))
                if self._audio_stream is not None:
                    self._container.mux(self._audio_stream.encode(None))
            self._container.close()
            if exc_type is None:
                os.replace(self._temp, self.path)
        finally:
            if self._temp is not None and self._temp.exists():
                self._temp.unlink()
