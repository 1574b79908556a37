"""Image files → upright 8-bit RGB arrays, whatever their mode (Pillow, EXIF orientation applied)."""

from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image, ImageOps, UnidentifiedImageError


def load_image_rgb(path: str | Path | None = None) -> np.ndarray:
    """A photo as (H, W, 3) uint8 RGB, upright (EXIF orientation applied); ``None`` is scikit-image's bundled
    ``astronaut`` portrait.

    Grayscale, palette, RGBA/LA (composited on white), 16/32-bit integer, float and CMYK images are converted,
    not rejected (:func:`to_rgb8`); a file that is not a readable image raises ``ValueError`` naming it.
    """
    if path is None:
        return skimage.data.astronaut()
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"image {str(path)!r}: not a readable image ({error})") from None
    return to_rgb8(image)


def to_rgb8(image: Image.Image) -> np.ndarray:
    """Any Pillow image → (H, W, 3) uint8 RGB (alpha composited on white; high bit depths rescaled)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 1.0 if image.mode == "F" and values.max() <= 1.0 else (65535.0 if image.mode != "I" else values.max())
        gray = np.clip(values / max(top, 1e-12) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "P" or image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
