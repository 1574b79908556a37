"""Gaussian heatmaps of the lip landmarks, the input of the motion-VAE's lip branch (VividTalk §3.3).

kornia's ``render_gaussian2d`` renders a normalized PDF (each map sums to 1) on pixel-index
coordinates; the lip branch wants maps that peak at 1 on the landmark, in the pixel-centre convention
of :mod:`talkinghead.face.camera`, so they are built here directly (separably, one 1-D Gaussian per axis).
"""

import torch


def lip_heatmaps(points: torch.Tensor, size: tuple[int, int], sigma: float = 2.0) -> torch.Tensor:
    """Landmarks (B, L, 2) as (u, v) pixels → heatmaps (B, L, H, W), ``exp(−‖p − landmark‖² / 2σ²)``.

    Pixel (row i, column j) is evaluated at its centre ``(j + 0.5, i + 0.5)``, so a landmark on a pixel
    centre gives that pixel the value 1. Differentiable w.r.t. the landmarks.
    """
    if points.ndim != 3 or points.shape[-1] != 2:
        raise ValueError(f"landmarks must be (B, L, 2) pixel coordinates, got {tuple(points.shape)}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    height, width = size
    columns = torch.arange(width, device=points.device, dtype=points.dtype) + 0.5
    rows = torch.arange(height, device=points.device, dtype=points.dtype) + 0.5
    scale = -0.5 / sigma**2
    along_u = torch.exp(scale * (columns - points[..., :1]) ** 2)  # (B, L, W)
    along_v = torch.exp(scale * (rows - points[..., 1:]) ** 2)  # (B, L, H)
    return along_v.unsqueeze(-1) * along_u.unsqueeze(-2)
