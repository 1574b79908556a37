"""Extending a flow known on the face to the whole image (mesh-guided warping).

A flow field derived from a mesh is defined only where the mesh covers the image. :func:`extend_flow`
keeps it there and continues it smoothly outside — a push-pull fill, a low-resolution Gaussian blur and a
falloff to zero with the distance from the face — so hair and ears follow the face while the far
background stays put. Used by the embedded corpus' frame renderer (:mod:`talkinghead.data.synthetic.frame_renderer`)
and by the motion-VAE's 3-D prior flow (:class:`~talkinghead.render.motion_inputs.MotionInputRenderer`).
"""

import functools

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from kornia.filters import get_gaussian_kernel1d


def push_pull(values: torch.Tensor, weight: torch.Tensor, min_size: int = 4) -> torch.Tensor:
    """Fill values (B, C, H, W) where ``weight`` (B, 1, H, W) ∈ [0, 1] is low, from the known pixels around.

    Gortler et al.'s push-pull: average-pool the weighted values and weights down a pyramid, fill each level
    from the bilinearly upsampled coarser one where its own weight is below 1. Known pixels keep their value.
    """
    height, width = values.shape[-2:]
    if min(height, width) <= min_size or height % 2 or width % 2:
        total = weight.sum((-2, -1), keepdim=True)
        return (values * weight).sum((-2, -1), keepdim=True) / total.clamp(min=1e-6) * torch.ones_like(values)
    coarse_weight = F.avg_pool2d(weight, 2)
    coarse = F.avg_pool2d(values * weight, 2) / coarse_weight.clamp(min=1e-6)
    filled = push_pull(coarse, coarse_weight.mul(4.0).clamp(max=1.0), min_size)
    upsampled = F.interpolate(filled, size=(height, width), mode="bilinear", align_corners=False)
    return weight * values + (1.0 - weight) * upsampled


def gaussian_kernel_size(sigma: float) -> int:
    """An odd kernel size covering ±3σ."""
    return 2 * int(3.0 * sigma + 0.5) + 1


@functools.lru_cache(maxsize=32)
def _gaussian_kernel(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """kornia's normalised 1-D Gaussian (1, size), made once per (size, σ, dtype, device)."""
    return get_gaussian_kernel1d(size, torch.tensor([[sigma]], dtype=dtype, device=device))


def gaussian_blur(image: torch.Tensor, size: int, sigma: float, border_type: str) -> torch.Tensor:
    """:func:`kornia.filters.gaussian_blur2d` (``size``² kernel, σ in both directions, ``border_type``
    ``"constant"`` or ``"replicate"``) as two depthwise convolutions with kornia's kernel built once: rendering a
    batch of motion-VAE inputs blurs three times, and kornia's kernel construction and checks were half of the
    small operations of such a call."""
    channels, radius = image.shape[1], size // 2
    kernel = _gaussian_kernel(size, float(sigma), image.dtype, image.device)
    padded = F.pad(image, (radius, radius, radius, radius), mode=border_type)
    rows = F.conv2d(padded, kernel.view(1, 1, 1, size).expand(channels, 1, 1, size), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, size, 1).expand(channels, 1, size, 1), groups=channels)


def extend_flow(flow: torch.Tensor, covered: torch.Tensor, smoothing: float, reach: float) -> torch.Tensor:
    """Keep ``flow`` (B, 2, H, W) where ``covered`` (B, 1, H, W) is 1, extend it smoothly outside.

    ``smoothing``: Gaussian σ (px) of the exterior flow; ``reach``: distance (px) over which it fades, the
    falloff being ``clamp(2 · G_reach * covered, 0, 1)`` (1 at the face border, about 0.3 at ``reach`` px,
    0.05 at twice that). The exterior is computed at a quarter of the resolution.
    """
    factor = 4
    filled = push_pull(flow, covered)
    small = F.avg_pool2d(filled, factor)
    small_mask = F.avg_pool2d(covered, factor)
    sigma, reach = smoothing / factor, reach / factor
    small = gaussian_blur(small, gaussian_kernel_size(sigma), sigma, border_type="replicate")
    falloff = gaussian_blur(small_mask, gaussian_kernel_size(reach), reach, border_type="constant")
    exterior = small * (2.0 * falloff).clamp(max=1.0)
    exterior = F.interpolate(exterior, size=flow.shape[-2:], mode="bilinear", align_corners=False)
    inner = gaussian_blur(covered, 7, 1.5, border_type="constant")
    keep = (2.0 * inner - 1.0).clamp(0.0, 1.0) * covered
    return keep * flow + (1.0 - keep) * exterior
