"""One video → clips: decode at 25 fps, track, segment, crop, fit, and hand each clip to the video's work file.

Decoding (PyAV through :mod:`talkinghead.media`) yields upright frames on a constant 25-fps grid whatever
the stored rate or rotation (variable-frame-rate phone videos included); the audio is decoded to 16 kHz
mono by :func:`talkinghead.audio.load_audio`. Two decoders read the file in step: the first feeds the
tracker, the second, lagging behind, yields the frames of each finished segment to be cropped, so memory
holds one clip (at most :attr:`TrackingConfig.max_frames` crops), never the whole video.

A clip (paper §4.1) stores the 256² crops, the matching 16-kHz audio span, the 478 landmarks in
crop pixels and the closed-form fit of :func:`talkinghead.face.fitting.fit_sequence` (α shared, β and pose
per frame, O_lip) with the crop camera; ``meta.json`` adds the source video, frame range, per-frame crop
boxes (the transform that pastes results back), source size and fit residuals.

Bad input never raises: an unreadable, audio-less or mismatched video, or a failure inside it, becomes a
:class:`~talkinghead.data.preprocess.tracking.Rejection` and the clips finished before it are kept.
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from talkinghead.audio.io import AudioError, load_audio, num_video_frames
from talkinghead.conventions import FPS, SAMPLE_RATE
from talkinghead.data.clip import Clip, ClipValidationError
from talkinghead.data.preprocess.crop import crop_track, to_crop
from talkinghead.data.preprocess.discover import VideoInput
from talkinghead.data.preprocess.tracking import FaceTracker, Rejection, Segment, Segmenter, TrackingConfig
from talkinghead.data.preprocess.writer import VideoWork
from talkinghead.face import PerspectiveCamera, builtin_identity_std, load_morphable_model
from talkinghead.face.crop import crop_image
from talkinghead.face.fitting import SequenceFitConfig, fit_sequence, mediapipe_landmarks_for
from talkinghead.media import VideoError, iter_video_frames, probe_video


@dataclass(frozen=True)
class PreprocessSettings:
    """Everything that determines the output (the same settings give byte-identical shards).

    Attributes:
        source: the ``source`` field of every clip's ``meta.json`` (e.g. ``hdtf``, ``voxceleb``).
        model: ``builtin`` or the path of a FaceVerse ``.npy`` (fitted on its 68-landmark subset).
        tracking: tracker and segmenter thresholds.
        fit: settings of the closed-form fit.
        max_av_mismatch: largest tolerated difference (s) of the audio and video durations; within it the
            clip spans are cut to the shorter stream, beyond it the video is rejected.
        videos_per_shard: videos per shard (the unit of resume and of ``--num-shards`` job splitting).
        seed: identity-split seed of ``index.json``.
    """

    source: str = "video"
    model: str = "builtin"
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    fit: SequenceFitConfig = field(default_factory=lambda: SequenceFitConfig(smooth_sigma=1.0))
    max_av_mismatch: float = 0.5
    videos_per_shard: int = 16
    seed: int = 0


@dataclass
class VideoReport:
    key: str
    clips: int
    frames: int
    rejections: list[Rejection]


@lru_cache(maxsize=2)
def _model(source: str):
    model = load_morphable_model(source)
    std = builtin_identity_std(model.num_identity) if source == "builtin" else None
    return model, std


def _problem(error: Exception, kind: str, path: Path) -> str:
    """The part of a one-line VideoError/AudioError message after its ``video 'path': `` prefix."""
    return str(error).removeprefix(f"{kind} {str(path)!r}: ")


class _VideoJob:
    def __init__(self, video: VideoInput, settings: PreprocessSettings, work: VideoWork):
        self.video, self.settings, self.work = video, settings, work
        self.rejections: list[Rejection] = []
        self.camera = PerspectiveCamera()
        self.clips = 0
        self.frames = 0
        self._lagging_index = 0  # next frame the lagging decoder yields

    def run(self) -> None:
        path = self.video.path
        try:
            info = probe_video(path)
        except VideoError as error:
            self.rejections.append(Rejection(None, None, f"unreadable video: {_problem(error, 'video', path)}"))
            return
        if not info.has_audio:
            self.rejections.append(Rejection(None, None, "no audio track"))
            return
        try:
            audio = load_audio(path, SAMPLE_RATE, FPS)
        except AudioError as error:
            self.rejections.append(Rejection(None, None, f"unusable audio: {_problem(error, 'audio', path)}"))
            return
        audio_seconds = len(audio) / SAMPLE_RATE
        if info.duration > 0 and abs(info.duration - audio_seconds) > self.settings.max_av_mismatch:
            self.rejections.append(
                Rejection(
                    None,
                    None,
                    f"audio/video duration mismatch (audio {audio_seconds:.2f} s, video {info.duration:.2f} s)",
                )
            )
            return
        self._track(path, audio, (info.width, info.height) if info.rotation % 180 == 0 else (info.height, info.width))

    def _track(self, path: Path, audio: np.ndarray, size: tuple[int, int]) -> None:
        limit = num_video_frames(len(audio), FPS, SAMPLE_RATE)
        tracker, segmenter = FaceTracker(self.settings.tracking), Segmenter(self.settings.tracking)
        index = 0
        with (
            contextlib.closing(iter_video_frames(path, FPS)) as frames,
            contextlib.closing(iter_video_frames(path, FPS)) as lagging,
        ):
            try:
                for index, frame in enumerate(frames):
                    if index >= limit:
                        break
                    for segment in segmenter.push(tracker.observe(frame)):
                        self._emit(segment, lagging, audio, size)
                    self.frames = index + 1
                for segment in segmenter.finish():
                    self._emit(segment, lagging, audio, size)
            except VideoError as error:
                self.rejections.append(Rejection(index, None, f"decoding failed: {_problem(error, 'video', path)}"))
            finally:
                tracker.close()
                self.rejections.extend(segmenter.rejections)

    def _emit(self, segment: Segment, lagging: Iterator[np.ndarray], audio: np.ndarray, size: tuple[int, int]) -> None:
        """Crop, fit and store one segment (its frames come from the lagging decoder)."""
        boxes = crop_track(segment.landmarks)
        crops = []
        while self._lagging_index < segment.end:
            frame = next(lagging)
            if self._lagging_index >= segment.start:
                crops.append(crop_image(frame, tuple(int(v) for v in boxes[self._lagging_index - segment.start])))
            self._lagging_index += 1
        try:
            clip = self._clip(segment, boxes, np.stack(crops), audio, size)
        except (ClipValidationError, torch.linalg.LinAlgError, ValueError) as error:
            self.rejections.append(Rejection(segment.start, segment.end, f"fit failed: {error}"))
            return
        self.work.add(clip)
        self.clips += 1

    def _clip(
        self, segment: Segment, boxes: np.ndarray, crops: np.ndarray, audio: np.ndarray, size: tuple[int, int]
    ) -> Clip:
        model, std = _model(self.settings.model)
        landmarks = to_crop(segment.landmarks, boxes)
        observed = mediapipe_landmarks_for(model, torch.from_numpy(landmarks))
        fit = fit_sequence(
            model, observed[..., :2], self.camera, depth=observed[..., 2], alpha_std=std, config=self.settings.fit
        )
        hop = SAMPLE_RATE // FPS
        middle = boxes[len(boxes) // 2]
        meta = {
            "clip_id": f"{self.video.stem}-{self.clips:03d}",
            "identity_id": self.video.identity,
            "source": self.settings.source,
            "fps": FPS,
            "num_frames": len(boxes),
            "sample_rate": SAMPLE_RATE,
            "crop_box": [int(middle[0]), int(middle[1]), int(middle[0] + middle[2]), int(middle[1] + middle[2])],
            "crop_track": boxes.tolist(),
            "fit_residual": round(float(fit.residual.mean()), 4),
            "fit_residual_without_lips": round(float(fit.residual_without_lips.mean()), 4),
            "camera": {
                "image_size": self.camera.image_size,
                "focal": self.camera.focal,
                "distance": self.camera.distance,
            },
            "model": Path(self.settings.model).name,
            "video": self.video.key,
            "frame_range": [segment.start, segment.end],
            "source_size": list(size),
        }
        return Clip(
            meta=meta,
            audio=audio[segment.start * hop : segment.end * hop],
            alpha=fit.alpha.numpy(),
            beta=fit.beta.numpy(),
            pose=fit.pose.numpy(),
            lip_offsets=fit.lip_offsets.numpy(),
            landmarks=landmarks[..., :2],
            frames=crops,
        )


def process_video(video: VideoInput, settings: PreprocessSettings, out_dir: Path) -> VideoReport:
    """Preprocess one video into ``out_dir/.work`` (see :mod:`.writer`); never raises for bad input.

    Torch runs single-threaded here (one worker per core), which also makes the fit bit-reproducible
    whatever ``--workers`` is. An unexpected error inside the video is recorded as a rejection (reason
    ``processing error: …``) so the run goes on.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with VideoWork(out_dir, video) as work:
            job = _VideoJob(video, settings, work)
            try:
                job.run()
            except Exception as error:  # noqa: BLE001 - one bad video must not stop the run
                job.rejections.append(Rejection(None, None, f"processing error: {type(error).__name__}: {error}"))
            work.finish(job.rejections)
        return VideoReport(video.key, job.clips, job.frames, job.rejections)
    finally:
        torch.set_num_threads(threads)
