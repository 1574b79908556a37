"""The FOMM-style square face crop: where the 256² crop sits around a face's landmarks, and cutting it."""

import cv2
import numpy as np

from talkinghead.conventions import CROP_SIZE

# The crop camera's default view shows the canonical mean face's landmarks in a box of 125 × 159 px
# (the 17.7-cm face of camera.py) centred at (128, 133) in 256²: the crop side is 256 / 159 ≈ 1.61 times
# the landmark box's longer side, and the box centre sits 5/256 ≈ 0.02 of the side below the crop centre.
DEFAULT_CROP_SCALE = 1.61
CROP_CENTRE_OFFSET = 0.02


def crop_box(
    landmarks: np.ndarray, image_size: tuple[int, int], scale: float = DEFAULT_CROP_SCALE
) -> tuple[int, int, int]:
    """FOMM-style square crop (x0, y0, size) in pixels around the landmarks' bounding box.

    ``size = scale ×`` the box's longer side, centred on the box with the box centre
    :data:`CROP_CENTRE_OFFSET` of the side below the crop centre, so the face fills the crop as the crop
    camera frames the canonical face (see :data:`DEFAULT_CROP_SCALE`). The box may reach past the image;
    :func:`crop_image` pads. ``image_size`` (H, W) only bounds the size to the image's longer side × 2.
    """
    low, high = landmarks[:, :2].min(0), landmarks[:, :2].max(0)
    size = int(round(min(scale * float((high - low).max()), 2 * max(image_size))))
    centre_x, centre_y = (low + high) / 2.0
    x0 = int(round(centre_x - size / 2.0))
    y0 = int(round(centre_y - (0.5 + CROP_CENTRE_OFFSET) * size))
    return x0, y0, size


def crop_image(image: np.ndarray, box: tuple[int, int, int], out_size: int = CROP_SIZE) -> np.ndarray:
    """Cut a square box (x0, y0, size) from an image (edge-padded where it leaves it) and resize it.

    Shrinking uses ``cv2.INTER_AREA`` (OpenCV's area average, no aliasing); enlarging ``cv2.INTER_CUBIC``.
    """
    x0, y0, size = box
    height, width = image.shape[:2]
    pad = max(0, -x0, -y0, x0 + size - width, y0 + size - height)
    pad_width = ((pad, pad), (pad, pad)) + ((0, 0),) * (image.ndim - 2)
    padded = np.pad(image, pad_width, mode="edge") if pad else image
    patch = padded[y0 + pad : y0 + pad + size, x0 + pad : x0 + pad + size]
    interpolation = cv2.INTER_AREA if size >= out_size else cv2.INTER_CUBIC
    return cv2.resize(patch, (out_size, out_size), interpolation=interpolation)
