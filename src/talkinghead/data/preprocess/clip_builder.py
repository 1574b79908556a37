"""One video → clips: decode at 25 fps, track, segment, crop, fit, and hand each clip to the video's work file.

Decoding (PyAV through :mod:`talkinghead.media`) yields upright frames on a constant 25-fps grid whatever
the stored rate or rotation (variable-frame-rate phone videos included); the audio is decoded to 16 kHz
mono by :func:`talkinghead.audio.load_audio` and moved by the container's audio start offset
(:attr:`talkinghead.media.VideoInfo.audio_delay`) so that audio sample 0 plays with video frame 0. A video
without an audio stream takes its sound from a same-stem ``.wav`` or ``.flac`` beside it (:func:`sidecar_audio`).
Two decoders read the file in step: the first feeds the tracker, the second, lagging behind, yields the
frames of each finished segment to be cropped, so memory holds one clip (at most
:attr:`TrackingConfig.max_frames` crops), never the whole video.

Each segment is cut with one fixed box (:func:`talkinghead.face.clip_crop.clip_crop_box`), its A/V offset
is estimated (:mod:`.av_sync`; an out-of-sync clip is rejected or its audio shifted), and it is fitted.
A clip (paper §4.1) stores the 256² crops, the matching 16-kHz audio span, the 478 landmarks in
crop pixels and the closed-form fit of :func:`talkinghead.face.fitting.fit_sequence` (α shared, β and pose
per frame, O_lip) with the crop camera; ``meta.json`` adds the source video, frame range, the crop box
(constant per clip; ``crop_track`` repeats it per frame, the transform that pastes results back), source
size, fit residuals, the A/V offset and how well the fitted mouth follows the tracked one
(:func:`talkinghead.face.mouth.mouth_fit`).

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
from talkinghead.data.preprocess.av_sync import AVOffset, AVSyncConfig, envelope_offset, shift_audio, syncnet_offset
from talkinghead.data.preprocess.discover import VideoInput
from talkinghead.data.preprocess.tracking import FaceTracker, Rejection, Segment, Segmenter, TrackingConfig
from talkinghead.data.preprocess.writer import VideoWork
from talkinghead.face import PerspectiveCamera, load_morphable_model
from talkinghead.face.clip_crop import clip_crop_box, to_crop
from talkinghead.face.crop import crop_image
from talkinghead.face.fitting import SequenceFitConfig
from talkinghead.face.morphable_model import MorphableModel
from talkinghead.face.mouth import mouth_fit
from talkinghead.face.video_fit import VIDEO_FIT, fit_tracked_clip
from talkinghead.media import VideoError, iter_video_frames, probe_video, sidecar_audio
from talkinghead.models.syncnet import load_syncnet


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
        av_sync: the out-of-sync filter (:class:`~talkinghead.data.preprocess.av_sync.AVSyncConfig`).
        syncnet_weights: a ``syncnet_v2.model`` state dict: estimate A/V offsets with SyncNet instead of the
            weight-free speech-envelope fallback.
        videos_per_shard: videos per shard (the unit of resume and of ``--num-shards`` job splitting).
        seed: identity-split seed of ``index.json``.
    """

    source: str = "video"
    model: str = "builtin"
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    fit: SequenceFitConfig = VIDEO_FIT
    max_av_mismatch: float = 0.5
    av_sync: AVSyncConfig = field(default_factory=AVSyncConfig)
    syncnet_weights: str | None = None
    videos_per_shard: int = 16
    seed: int = 0


@dataclass
class VideoReport:
    key: str
    clips: int
    frames: int
    rejections: list[Rejection]


@lru_cache(maxsize=2)
def _model(source: str) -> MorphableModel:
    return load_morphable_model(source)


@lru_cache(maxsize=1)
def _syncnet(path: str):
    return load_syncnet(path)


def align_audio(audio: np.ndarray, delay: float) -> np.ndarray:
    """Audio whose sample 0 plays ``delay`` s after video frame 0 → audio whose sample 0 plays with it."""
    shift = int(round(delay * SAMPLE_RATE))
    if shift > 0:
        return np.concatenate((np.zeros(shift, np.float32), audio))
    return audio[-shift:]


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
        source = path if info.has_audio else sidecar_audio(path)
        if source is None:
            self.rejections.append(Rejection(None, None, "no audio track (and no same-stem .wav/.flac beside it)"))
            return
        try:
            audio = load_audio(source, SAMPLE_RATE, FPS)
        except AudioError as error:
            self.rejections.append(Rejection(None, None, f"unusable audio: {_problem(error, 'audio', source)}"))
            return
        if info.has_audio:
            audio = align_audio(audio, info.audio_delay)
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
        """Crop, check A/V sync, fit and store one segment (its frames come from the lagging decoder)."""
        box = clip_crop_box(segment.landmarks)
        crops = []
        while self._lagging_index < segment.end:
            frame = next(lagging)
            if self._lagging_index >= segment.start:
                crops.append(crop_image(frame, box))
            self._lagging_index += 1
        crops = np.stack(crops)
        landmarks = to_crop(segment.landmarks, box)
        offset, clip_audio = self._synchronise(segment, crops, landmarks, audio)
        if clip_audio is None:
            return
        try:
            clip = self._clip(segment, crops, clip_audio, offset, size)
        except (ClipValidationError, torch.linalg.LinAlgError, ValueError) as error:
            self.rejections.append(Rejection(segment.start, segment.end, f"fit failed: {error}"))
            return
        self.work.add(clip)
        self.clips += 1

    def _synchronise(
        self, segment: Segment, crops: np.ndarray, landmarks: np.ndarray, audio: np.ndarray
    ) -> tuple[AVOffset | None, np.ndarray | None]:
        """The segment's A/V offset and audio span (shifted when asked), or ``None`` audio when rejected."""
        config = self.settings.av_sync
        plain = shift_audio(audio, segment.start, segment.end, 0)
        if not config.enabled:
            return None, plain
        if self.settings.syncnet_weights:
            offset = syncnet_offset(_syncnet(self.settings.syncnet_weights), crops, landmarks, plain)
        else:
            offset = envelope_offset(landmarks, plain)
        if not config.needs_fix(offset):
            return offset, plain
        if config.fix:
            return offset, shift_audio(audio, segment.start, segment.end, offset.frames)
        reason = f"audio/video offset {offset.describe()} exceeds {config.max_offset}"
        self.rejections.append(Rejection(segment.start, segment.end, reason))
        return offset, None

    def _clip(
        self, segment: Segment, crops: np.ndarray, audio: np.ndarray, offset: AVOffset | None, size: tuple[int, int]
    ) -> Clip:
        model = _model(self.settings.model)
        tracked = fit_tracked_clip(model, segment.landmarks, self.camera, self.settings.fit)
        fit = tracked.fit
        x0, y0, side = tracked.box
        meta = {
            "clip_id": f"{self.video.stem}-{self.clips:03d}",
            "identity_id": self.video.identity,
            "source": self.settings.source,
            "fps": FPS,
            "num_frames": len(crops),
            "sample_rate": SAMPLE_RATE,
            "crop_box": [x0, y0, x0 + side, y0 + side],
            "crop_track": [[x0, y0, side]] * len(crops),
            "fit_residual": round(float(fit.residual.mean()), 4),
            "fit_residual_without_lips": round(float(fit.residual_without_lips.mean()), 4),
            **mouth_fit(model, fit, self.camera, tracked.observed[..., :2].numpy(), tracked.landmarks),
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
        if offset is not None:
            meta |= {
                "av_offset_frames": offset.frames,
                "av_offset_method": offset.method,
                "av_offset_confidence": offset.confidence,
                "av_offset_shifted": self.settings.av_sync.needs_fix(offset),
            }
        return Clip(
            meta=meta,
            audio=audio,
            alpha=fit.alpha.numpy(),
            beta=fit.beta.numpy(),
            pose=fit.pose.numpy(),
            lip_offsets=fit.lip_offsets.numpy(),
            landmarks=tracked.landmarks[..., :2],
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
