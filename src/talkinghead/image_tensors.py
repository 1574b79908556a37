"""Conversion of image tensors in [0, 1] to 8-bit pixels, the one rounding every writer of images uses."""

import numpy as np
import torch


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) in [0, 1] → (..., H, W, 3) uint8 (clamped, rounded to nearest), on the CPU."""
    return (images.detach().float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).movedim(-3, -1).cpu().numpy()
