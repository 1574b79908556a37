"""Decode a video file frame by frame: upright RGB uint8, optionally resampled to a constant frame rate.

* Streaming: frames are yielded as they are decoded, so memory does not grow with the file's length.
* Rotation: phone videos store their orientation as a display matrix; :func:`iter_video_frames` applies it
  (``frame.rotation``, counter-clockwise degrees, multiples of 90) so every frame comes out upright.
* Constant rate: with ``fps`` set, output frame ``k`` is the last decoded frame whose presentation time is
  ≤ ``k / fps`` (relative to the first frame), i.e. variable-frame-rate input is sampled on a regular grid by
  repeating or dropping frames, the way FFmpeg's ``fps`` filter does.

Errors are :class:`VideoError`, one line naming the file and the problem.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np


class VideoError(ValueError):
    """A video input or output that cannot be used; the message is one line naming the file and the problem."""


def video_error(path: str | os.PathLike, problem: str) -> VideoError:
    return VideoError(f"video {str(path)!r}: {' '.join(str(problem).split())}")


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream (``duration`` in seconds, 0 when unknown).

    ``audio_delay``: seconds from the first video frame to the first decoded sample of the first audio
    stream (the streams' ``start_time × time_base`` difference; 0 without audio or start times). Decoded
    audio sample 0 plays at ``audio_delay``, so it lines up with video frame ``audio_delay × fps``.
    """

    width: int
    height: int
    fps: float
    duration: float
    num_frames: int
    rotation: int
    has_audio: bool
    audio_delay: float = 0.0


def _start_seconds(stream) -> float | None:
    if stream.start_time is None or stream.time_base is None:
        return None
    return float(stream.start_time * stream.time_base)


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise video_error(path, "no such file")
    if path.stat().st_size == 0:
        raise video_error(path, "empty file (0 bytes)")
    try:
        container = av.open(str(path))
    except av.FFmpegError as error:
        raise video_error(path, f"not a readable video container ({error.strerror or error})") from error
    if not container.streams.video:
        container.close()
        raise video_error(path, "no video stream")
    return container


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Stream facts without decoding the whole file (the rotation needs the first frame)."""
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or 0
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        rotation = 0
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as error:
            raise video_error(path, f"not decodable ({error.strerror or error})") from error
        if first is not None:
            rotation = int(round(first.rotation)) % 360
        delay = 0.0
        if container.streams.audio:
            video_start, audio_start = _start_seconds(stream), _start_seconds(container.streams.audio[0])
            if video_start is not None and audio_start is not None:
                delay = audio_start - video_start
        return VideoInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=float(rate),
            duration=duration,
            num_frames=int(stream.frames or round(duration * float(rate))),
            rotation=rotation,
            has_audio=bool(container.streams.audio),
            audio_delay=delay,
        )


def _upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """Undo a display-matrix rotation (counter-clockwise degrees) so the image is shown as intended."""
    turns = int(round(rotation / 90)) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def iter_video_frames(path: str | os.PathLike, fps: float | None = None) -> Iterator[np.ndarray]:
    """Yield upright (H, W, 3) uint8 RGB frames; at the stored rate, or on a constant ``fps`` grid (module doc)."""
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start, emitted, current, time = None, 0, None, 0.0
        try:
            for frame in container.decode(stream):
                image = _upright(frame.to_ndarray(format="rgb24"), frame.rotation)
                if fps is None:
                    yield image
                    continue
                stamp = float(frame.pts * frame.time_base) if frame.pts is not None else time + 1 / fps
                start = stamp if start is None else start
                time = stamp - start
                while current is not None and emitted / fps < time - 1e-6:
                    yield current
                    emitted += 1
                current = image
        except av.FFmpegError as error:
            raise video_error(path, f"decoding failed ({error.strerror or error})") from error
        while current is not None and emitted / fps <= time + 1e-6:
            yield current
            emitted += 1


SIDECAR_AUDIO = (".wav", ".flac")


def sidecar_audio(path: Path) -> Path | None:
    """The same-stem ``.wav`` / ``.flac`` beside a video (how some public corpora ship their sound), if any."""
    for suffix in SIDECAR_AUDIO:
        candidate = path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None
