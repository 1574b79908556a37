"""Where a segment needs more than one crop box: split it so one fixed box per clip frames the face well.

Every clip is cut with one box (:func:`talkinghead.face.clip_crop.clip_crop_box`: the union of the
per-frame landmark boxes, FOMM-style). When the face travels, the union grows and the face becomes small
in the crop, so a segment is split where the union's longer side would exceed ``max_growth`` × the median
per-frame face box (:func:`talkinghead.face.clip_crop.union_growth`). The default 1.25
(:attr:`~talkinghead.data.preprocess.tracking.TrackingConfig.max_box_growth`) keeps the face at ≥ 80 % of
the size the crop camera expects: a seated speaker (HDTF, VoxCeleb: a few % of motion) stays in one clip,
a speaker who walks a quarter of a face width is split. Splitting is greedy from the segment's start.
"""

import numpy as np


def split_for_fixed_box(landmarks: np.ndarray, max_growth: float) -> list[tuple[int, int]]:
    """Greedy ``[start, end)`` spans of landmarks (T, N, 2+) whose union box grows at most ``max_growth``."""
    low, high = landmarks[..., :2].min(1), landmarks[..., :2].max(1)
    sides = (high - low).max(1)
    spans, start = [], 0
    union_low, union_high = low[0].copy(), high[0].copy()
    for index in range(1, len(landmarks)):
        next_low, next_high = np.minimum(union_low, low[index]), np.maximum(union_high, high[index])
        growth = float((next_high - next_low).max()) / max(float(np.median(sides[start : index + 1])), 1e-6)
        if growth > max_growth:
            spans.append((start, index))
            start, next_low, next_high = index, low[index].copy(), high[index].copy()
        union_low, union_high = next_low, next_high
    spans.append((start, len(landmarks)))
    return spans
