"""The inner-lip opening of 2-D MediaPipe landmarks, relative to the face height, and the mouth-fit check.

The opening is the distance between the middles of the inner upper and inner lower lip (FaceMesh 13 and
14) over the face height (forehead 10 to chin 152), so it does not depend on the face's size in the image.
The built-in model's vertices are FaceMesh's landmarks, so the same ids measure a fitted mesh. It is
the signal the preprocessing checks against: the audio envelope (A/V offset) and the fitted mesh
(:func:`mouth_fit`).
"""

import numpy as np
import torch

from talkinghead.face.camera import PerspectiveCamera
from talkinghead.face.fitting import SequenceFit, mediapipe_ids_for
from talkinghead.face.morphable_model import MorphableModel
from talkinghead.face.pose import apply_pose

INNER_LIP_PAIR = (13, 14)
FACE_HEIGHT_PAIR = (10, 152)


def inner_lip_opening(points: np.ndarray) -> np.ndarray:
    """(T, N ≥ 468, 2+) MediaPipe-indexed points → (T,) inner-lip opening / face height."""
    points = np.asarray(points, dtype=np.float64)[..., :2]
    upper, lower = INNER_LIP_PAIR
    top, chin = FACE_HEIGHT_PAIR
    opening = np.linalg.norm(points[:, upper] - points[:, lower], axis=-1)
    height = np.linalg.norm(points[:, top] - points[:, chin], axis=-1)
    return opening / np.maximum(height, 1e-6)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equally long series; 0 when either is constant."""
    a, b = np.asarray(a, np.float64) - np.mean(a), np.asarray(b, np.float64) - np.mean(b)
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / norm) if norm > 1e-12 else 0.0


def lagged_correlations(opening: np.ndarray, level: np.ndarray, max_lag: int) -> np.ndarray:
    """(2·max_lag + 1,) Pearson r of ``opening[v]`` with ``level[v − o]`` for o = −max_lag … max_lag (overlaps)."""
    values = []
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            values.append(pearson(opening[lag:], level[: len(level) - lag]))
        else:
            values.append(pearson(opening[:lag], level[-lag:]))
    return np.array(values)


def mouth_fit(
    model: MorphableModel, fit: SequenceFit, camera: PerspectiveCamera, observed: np.ndarray, tracked: np.ndarray
) -> dict:
    """How well a clip's fitted mesh reproduces the tracked inner-lip opening (``meta.json`` fields).

    The opening of the fitted mesh (projected with the crop camera) and of the tracked landmarks, each over
    the tracked face height: ``mouth_fit_r`` is their Pearson r over the clip (with O_lip, as the clip's
    mesh is), ``mouth_fit_r_without_lips`` the same with β alone, ``mouth_fit_std`` the fitted and tracked
    openings' standard deviations. ``observed`` (T, K, 2) are the tracked landmarks of the model's landmark
    ids (:func:`~talkinghead.face.fitting.mediapipe_landmarks_for`), ``tracked`` (T, 478, 2+) all of them,
    in crop pixels.
    """
    columns = mediapipe_ids_for(model)
    upper, lower = (columns.index(i) for i in INNER_LIP_PAIR)
    top, chin = FACE_HEIGHT_PAIR
    height = np.maximum(np.linalg.norm(tracked[:, top, :2] - tracked[:, chin, :2], axis=-1), 1e-6)

    def opening(points: np.ndarray) -> np.ndarray:
        return np.linalg.norm(points[:, upper] - points[:, lower], axis=-1) / height

    def projected(lip_offsets: torch.Tensor | None) -> np.ndarray:
        vertices = model.vertices(fit.alpha[None], fit.beta, lip_offsets)[:, model.landmark_ids]
        return camera.project(apply_pose(vertices, fit.pose))[..., :2].numpy()

    fitted, truth = opening(projected(fit.lip_offsets)), opening(observed)
    return {
        "mouth_fit_r": round(pearson(fitted, truth), 4),
        "mouth_fit_r_without_lips": round(pearson(opening(projected(None)), truth), 4),
        "mouth_fit_std": [round(float(fitted.std()), 5), round(float(truth.std()), 5)],
    }
