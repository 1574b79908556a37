"""Per-video measurements for the evaluation: face track, head pose, and metrics against a reference video.

One decoding pass per video (:func:`analyse_video`) runs MediaPipe FaceMesh on every frame (resampled to
25 fps) and, when those networks were supplied, collects Inception features (FID) and identity embeddings
(CSIM). From the track:

* head pose per frame: the project's 3DMM fit (:func:`talkinghead.face.fitting.fit_landmarks`, pose, one α
  per video, β per frame) to the landmarks mapped into a 256² face crop — the crop framing of the training
  data (:func:`talkinghead.face.crop.crop_box` around the median landmark box, one box per video);
* HPD (VividTalk §4.1): :func:`talkinghead.metrics.pose.head_pose_diversity` of that pose, deg²;
* against a reference video (frame ``t`` with frame ``t``, over the shorter length): mouth landmark
  distance (:func:`talkinghead.metrics.landmarks.mouth_landmark_distance` on the 40 lip landmarks in crop
  pixels), lip vertex error (:func:`talkinghead.metrics.facial_motion.lip_vertex_error` between the lip
  vertices of ``S̄ + α_ref U_id + β U_exp`` for the generated and the reference β, cm: identity and pose
  are factored out, only the fitted expression is compared), PSNR and SSIM of whole frames (the generated
  frame resized to the reference's size when they differ).

Frames where FaceMesh finds no face take the landmarks of the nearest frames (linear interpolation) and
are counted; a video without any face yields no face metrics.
"""

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import zip_longest
from pathlib import Path

import cv2
import numpy as np
import torch

from talkinghead.audio.io import AudioError, load_audio
from talkinghead.conventions import CROP_SIZE, FPS
from talkinghead.evaluation.fid import InceptionFeatures
from talkinghead.evaluation.identity import align_face, identity_embeddings
from talkinghead.face.camera import PerspectiveCamera
from talkinghead.face.canonical_mesh import NUM_VERTICES
from talkinghead.face.crop import crop_box
from talkinghead.face.detection import NoFaceError, detect_face_landmarks
from talkinghead.face.fitting import FitResult, fit_landmarks
from talkinghead.face.morphable_model import MorphableModel
from talkinghead.face.regions import lip_ids
from talkinghead.media import iter_video_frames, sidecar_audio
from talkinghead.metrics.facial_motion import lip_vertex_error
from talkinghead.metrics.image import psnr, ssim
from talkinghead.metrics.landmarks import mouth_landmark_distance

BATCH = 16


@lru_cache(maxsize=1)
def _model() -> MorphableModel:
    from talkinghead.face.builtin import builtin_morphable_model

    return builtin_morphable_model()


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """One intra-op thread: the fit's tensors are small (T × 468 × 3), so thread hand-offs cost more than
    they save (about 7× on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class FaceTrack:
    """FaceMesh landmarks of every frame (x, y in frame pixels, z MediaPipe depth in pixels)."""

    landmarks: np.ndarray  # (T, 468, 3) float32, interpolated where ``found`` is False
    found: np.ndarray  # (T,) bool
    frame_size: tuple[int, int]  # (H, W)

    @property
    def num_frames(self) -> int:
        return len(self.found)

    @property
    def has_face(self) -> bool:
        return bool(self.found.any())

    def crop_landmarks(self) -> np.ndarray:
        """(T, 468, 3) landmarks in the pixels of one 256² face crop for the whole video (module docstring)."""
        x0, y0, size = crop_box(np.median(self.landmarks[self.found], axis=0), self.frame_size)
        scale = CROP_SIZE / size
        return (self.landmarks - np.array([x0, y0, 0.0], dtype=np.float32)) * scale


def _interpolate_missing(landmarks: list[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    found = np.array([points is not None for points in landmarks])
    if not found.any():
        return np.zeros((len(landmarks), NUM_VERTICES, 3), np.float32), found
    known = np.flatnonzero(found)
    stacked = np.stack([landmarks[i] for i in known]).reshape(len(known), -1)
    every = np.arange(len(landmarks))
    filled = np.stack([np.interp(every, known, column) for column in stacked.T], axis=1)
    return filled.reshape(len(landmarks), NUM_VERTICES, 3).astype(np.float32), found


@dataclass
class VideoAnalysis:
    """What one pass over a video yields (features and embeddings only for the networks supplied)."""

    path: Path
    track: FaceTrack
    inception_features: np.ndarray | None = None  # (T, 2048)
    identity: torch.Tensor | None = None  # (F, D), frames with a face
    _fit: FitResult | None = field(default=None, repr=False)

    def fit(self) -> FitResult:
        """The 3DMM fit of the whole track (computed once): pose (T, 6), α shared, β (T, 52)."""
        if self._fit is None:
            landmarks = torch.from_numpy(self.track.crop_landmarks())
            with _single_thread():
                self._fit = fit_landmarks(
                    _model(),
                    landmarks[..., :2],
                    PerspectiveCamera(image_size=CROP_SIZE),
                    depth=landmarks[..., 2],
                    share_alpha=True,
                    fit_expression=True,
                )
        return self._fit


def clip_speech(video: str | os.PathLike) -> np.ndarray:
    """A real clip's speech (16-kHz mono): its own audio track, else a same-stem ``.wav``/``.flac`` beside it;
    :class:`~talkinghead.audio.io.AudioError` when it has neither."""
    try:
        return load_audio(video)
    except AudioError:
        sidecar = sidecar_audio(Path(video))
        if sidecar is None:
            raise
        return load_audio(sidecar)


def analyse_video(
    path: str | os.PathLike,
    inception: InceptionFeatures | None = None,
    identity_network=None,
) -> VideoAnalysis:
    """Decode ``path`` at 25 fps once: landmarks, and Inception features / identity embeddings when given."""
    path = Path(path)
    landmarks: list[np.ndarray | None] = []
    features, faces, batch = [], [], []
    frame_size = (0, 0)
    for frame in iter_video_frames(path, fps=FPS):
        frame_size = frame.shape[:2]
        try:
            points = detect_face_landmarks(frame)
        except NoFaceError:
            points = None
        landmarks.append(points)
        if identity_network is not None and points is not None:
            faces.append(align_face(frame, points))
        if inception is not None:
            batch.append(frame)
            if len(batch) == BATCH:
                features.append(inception(torch.from_numpy(np.stack(batch))).numpy())
                batch = []
    if inception is not None and batch:
        features.append(inception(torch.from_numpy(np.stack(batch))).numpy())
    filled, found = _interpolate_missing(landmarks)
    analysis = VideoAnalysis(path=path, track=FaceTrack(filled, found, frame_size))
    if inception is not None:
        analysis.inception_features = np.concatenate(features)
    if identity_network is not None and faces:
        analysis.identity = identity_embeddings(identity_network, np.stack(faces))
    return analysis


def reference_identity(image: np.ndarray, identity_network) -> torch.Tensor:
    """(D,) identity embedding of a reference photo (H, W, 3) uint8 RGB; NoFaceError when it shows no face."""
    return identity_embeddings(identity_network, align_face(image, detect_face_landmarks(image))[None])[0]


def mouth_distance(generated: VideoAnalysis, reference: VideoAnalysis) -> float:
    """LMD (crop pixels) of the 40 lip landmarks over the common frames."""
    length = min(generated.track.num_frames, reference.track.num_frames)
    ids = lip_ids()
    a = torch.from_numpy(generated.track.crop_landmarks()[:length, ids, :2])
    b = torch.from_numpy(reference.track.crop_landmarks()[:length, ids, :2])
    return float(mouth_landmark_distance(a, b))


def fitted_lip_vertex_error(generated: VideoAnalysis, reference: VideoAnalysis) -> float:
    """LVE (cm) between the fitted expressions on the reference identity, over the common frames."""
    length = min(generated.track.num_frames, reference.track.num_frames)
    model = _model()
    alpha = reference.fit().alpha[:length]
    predicted = model.vertices(alpha, generated.fit().beta[:length])
    target = model.vertices(alpha, reference.fit().beta[:length])
    return float(lip_vertex_error(predicted, target, model.lip_ids).mean())


def _batched(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0


def frame_quality(generated: str | os.PathLike, reference: str | os.PathLike) -> tuple[float, float]:
    """Mean PSNR (dB) and SSIM of frame ``t`` against reference frame ``t`` over the common frames."""
    psnr_values, ssim_values, pair_a, pair_b = [], [], [], []

    def flush() -> None:
        a, b = _batched(pair_a), _batched(pair_b)
        psnr_values.append(psnr(a, b))
        ssim_values.append(ssim(a, b))
        pair_a.clear()
        pair_b.clear()

    pairs = zip_longest(iter_video_frames(generated, fps=FPS), iter_video_frames(reference, fps=FPS))
    for frame, target in pairs:
        if frame is None or target is None:  # compare the frames both videos have
            break
        if frame.shape != target.shape:
            height, width = target.shape[:2]
            shrink = height * width < frame.shape[0] * frame.shape[1]
            frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        pair_a.append(frame)
        pair_b.append(target)
        if len(pair_a) == BATCH:
            flush()
    if pair_a:
        flush()
    return float(torch.cat(psnr_values).mean()), float(torch.cat(ssim_values).mean())
