"""Full-frame mode: paste the generated 256² face crop back into the original portrait.

The crop is the square box ``(x0, y0, size)`` of :func:`talkinghead.face.crop.crop_box` (it may reach past
the image, where the crop was edge-padded). Each generated frame is resized to ``size²`` and blended over the
portrait with a soft square mask: 1 inside, falling to 0 with a cosine ramp over the outer
:data:`FEATHER` of the crop, so the seam between the generated background and the photo is not visible.
Frames larger than ``max_side`` on their longer side are shrunk (the whole canvas, area interpolation) and
cut to even dimensions for yuv420p.
"""

import cv2
import numpy as np

FEATHER = 0.12


def feather_mask(size: int, feather: float = FEATHER) -> np.ndarray:
    """(size, size) float32: 1 in the middle, a cosine ramp to 0 over ``feather · size`` at each edge."""
    ramp = max(1, int(round(feather * size)))
    distance = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float32)
    profile = 0.5 - 0.5 * np.cos(np.pi * np.clip(distance / ramp, 0.0, 1.0))
    return np.outer(profile, profile).astype(np.float32)


class PasteBack:
    """Blend crops into the portrait: ``PasteBack(image, box, max_side)(crop) → full frame`` (uint8)."""

    def __init__(self, image: np.ndarray, box: tuple[int, int, int], max_side: int = 1280):
        height, width = image.shape[:2]
        scale = min(1.0, max_side / max(height, width))
        scaled_h, scaled_w = round(height * scale), round(width * scale)
        out_h, out_w = scaled_h // 2 * 2, scaled_w // 2 * 2
        if scale < 1:
            image = cv2.resize(image, (scaled_w, scaled_h), interpolation=cv2.INTER_AREA)
        self.canvas = image[:out_h, :out_w]
        x0, y0, size = (int(round(v * scale)) for v in box)
        self.size = max(size, 1)
        self.x0, self.y0 = x0, y0
        mask = feather_mask(self.size)
        self.dst = (slice(max(y0, 0), min(y0 + self.size, out_h)), slice(max(x0, 0), min(x0 + self.size, out_w)))
        self.src = (
            slice(self.dst[0].start - y0, self.dst[0].stop - y0),
            slice(self.dst[1].start - x0, self.dst[1].stop - x0),
        )
        self.mask = mask[self.src][..., None]
        self.base = self.canvas[self.dst].astype(np.float32)

    @property
    def frame_size(self) -> tuple[int, int]:
        """(height, width) of the output frames."""
        return self.canvas.shape[0], self.canvas.shape[1]

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        """(256, 256, 3) uint8 crop → (H, W, 3) uint8 portrait with the crop blended in."""
        interpolation = cv2.INTER_CUBIC if self.size > crop.shape[0] else cv2.INTER_AREA
        patch = cv2.resize(crop, (self.size, self.size), interpolation=interpolation)[self.src].astype(np.float32)
        frame = self.canvas.copy()
        frame[self.dst] = np.clip(self.mask * patch + (1.0 - self.mask) * self.base + 0.5, 0, 255).astype(np.uint8)
        return frame
