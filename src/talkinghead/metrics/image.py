"""Frame-quality metrics against ground-truth frames (torchmetrics), for reconstruction with a real video.

* :func:`psnr` — peak signal-to-noise ratio ``10·log10(range² / MSE)`` per image (dB);
* :func:`ssim` — structural similarity (Wang et al., "Image quality assessment: from error visibility to
  structural similarity", IEEE TIP 2004): 11 × 11 Gaussian window, σ = 1.5, K = (0.01, 0.03), per image.

Images are (B, C, H, W) floats in ``[0, data_range]``; both return (B,).
"""

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def psnr(predicted: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR (B,) in dB; ``inf`` for identical images."""
    return peak_signal_noise_ratio(predicted, target, data_range=data_range, reduction="none", dim=(1, 2, 3))


def ssim(predicted: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """SSIM (B,) in [−1, 1], 1 for identical images."""
    return structural_similarity_index_measure(predicted, target, data_range=data_range, reduction="none")
