"""The inner-lip opening of 2-D MediaPipe landmarks, relative to the face height.

The opening is the distance between the middles of the inner upper and inner lower lip (FaceMesh 13 and
14) over the face height (forehead 10 to chin 152), so it does not depend on the face's size in the image.
The built-in model's vertices are FaceMesh's landmarks, so the same ids measure a fitted mesh. It is
the signal the preprocessing checks against: the audio envelope (A/V offset) and the fitted mesh (mouth fit).
"""

import numpy as np

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
