"""One fixed 256² crop box for a whole clip (paper §4.1: "crop to 256 × 256 following FOMM").

FOMM's ``crop-video.py`` tracks the face through a clip and cuts the whole clip with one box: the union
of the per-frame face boxes, enlarged and made square. Here the per-frame box is the landmarks' bounding
box; the clip's box is the union of those boxes, made square with :func:`talkinghead.face.crop.crop_box`'s
framing (side :data:`~talkinghead.face.crop.DEFAULT_CROP_SCALE` × the union's longer side, the union's
centre :data:`~talkinghead.face.crop.CROP_CENTRE_OFFSET` of the side below the crop centre). The face
therefore lies inside the crop in every frame, and head motion (translation and scale) stays visible in
the crop as it is in the source video: the crop camera sees it as pose, not as a moving crop.

The box is ``(x0, y0, side)`` in integer source pixels: crop pixel (u, v) is source pixel
``(x0 + u · side / 256, y0 + v · side / 256)``, which pastes results back into the source video.
"""

import numpy as np

from talkinghead.conventions import CROP_SIZE
from talkinghead.face.crop import CROP_CENTRE_OFFSET, DEFAULT_CROP_SCALE


def face_boxes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame landmark boxes of (T, N, 2+) pixels: corners ``low`` and ``high``, each (T, 2)."""
    return landmarks[..., :2].min(1), landmarks[..., :2].max(1)


def union_growth(landmarks: np.ndarray) -> float:
    """Longer side of the union of the per-frame landmark boxes over the median per-frame longer side."""
    low, high = face_boxes(landmarks)
    union = float((high.max(0) - low.min(0)).max())
    return union / max(float(np.median((high - low).max(1))), 1e-6)


def clip_crop_box(landmarks: np.ndarray, scale: float = DEFAULT_CROP_SCALE) -> tuple[int, int, int]:
    """The clip's square box ``(x0, y0, side)`` from landmarks (T, N, 2+) in source pixels (module doc)."""
    low, high = face_boxes(landmarks)
    low, high = low.min(0), high.max(0)
    side = scale * float((high - low).max())
    centre_x, centre_y = (low + high) / 2.0
    x0 = int(round(centre_x - side / 2.0))
    y0 = int(round(centre_y - (0.5 + CROP_CENTRE_OFFSET) * side))
    return x0, y0, int(round(side))


def to_crop(landmarks: np.ndarray, box: tuple[int, int, int], out_size: int = CROP_SIZE) -> np.ndarray:
    """Landmarks (T, N, 3) (x, y, z · W) in source pixels → crop pixels (all three scaled by out_size / side)."""
    x0, y0, side = box
    moved = landmarks.astype(np.float64).copy()
    moved[..., 0] -= x0
    moved[..., 1] -= y0
    return (moved * (out_size / float(side))).astype(np.float32)
