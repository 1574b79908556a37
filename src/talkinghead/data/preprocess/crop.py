"""The stable 256² face crop of a segment (§4.1: "crop to 256 × 256 following FOMM") and its transform.

Per frame the landmark box gives a square box with :func:`talkinghead.face.crop.crop_box`'s framing
(side 1.61 × the landmark box's longer side, face centre 2 % of the side below the crop centre), which is
how the crop camera frames the canonical face, so fitting with that camera sees faces at their usual size.
Over the segment the box is stabilised the FOMM way (one box size per clip, so the face may move and
scale inside it): the side is the segment's median, and the centre follows the face slowly through a
Gaussian of σ = :data:`CENTRE_SIGMA_FRAMES` (0.5 s at 25 fps), so head motion stays visible in the crop
while slow drift (a speaker walking) is followed.

The transform stored per frame is the integer box ``(x0, y0, side)``: crop pixel (u, v) is source pixel
``(x0 + u · side / 256, y0 + v · side / 256)``, which pastes results back into the source video.
"""

import numpy as np
from scipy.ndimage import gaussian_filter1d

from talkinghead.conventions import CROP_SIZE
from talkinghead.face.crop import CROP_CENTRE_OFFSET, DEFAULT_CROP_SCALE

CENTRE_SIGMA_FRAMES = 12.5


def crop_track(landmarks: np.ndarray, scale: float = DEFAULT_CROP_SCALE) -> np.ndarray:
    """Integer boxes (T, 3) as (x0, y0, side) for landmarks (T, N, 2+) in source pixels (module doc)."""
    low, high = landmarks[..., :2].min(1), landmarks[..., :2].max(1)
    side = float(np.median(scale * (high - low).max(1)))
    centre = gaussian_filter1d((low + high) / 2.0, CENTRE_SIGMA_FRAMES, axis=0, mode="nearest")
    x0 = np.rint(centre[:, 0] - side / 2.0)
    y0 = np.rint(centre[:, 1] - (0.5 + CROP_CENTRE_OFFSET) * side)
    return np.stack((x0, y0, np.full_like(x0, round(side))), axis=1).astype(np.int64)


def to_crop(landmarks: np.ndarray, boxes: np.ndarray, out_size: int = CROP_SIZE) -> np.ndarray:
    """Landmarks (T, N, 3) (x, y, z · W) in source pixels → crop pixels (all three scaled by out_size / side)."""
    scale = out_size / boxes[:, 2].astype(np.float64)
    moved = landmarks.astype(np.float64).copy()
    moved[..., :2] -= boxes[:, None, :2]
    return (moved * scale[:, None, None]).astype(np.float32)
