"""Dense-flow helpers: the identity sampling grid, flow resizing and backward warping (``grid_sample``).

Flow convention: (B, 2, h, w) backward displacements in ``grid_sample``'s normalized units with
``align_corners=False`` (−1 is the left/top *edge* of the image, +1 the right/bottom edge), x then y. The output
pixel whose centre has normalized position ``p`` takes the image at ``p + flow(p)``; a displacement of ``d``
pixels in a W-pixel-wide image is ``2d / W``, so one flow field applies at any resolution after bilinear resizing.
:func:`identity_grid` gives the normalized centre of every pixel, ``((2j + 1)/W − 1, (2i + 1)/H − 1)``, which
``grid_sample`` maps back to pixel (i, j) itself, so zero flow reproduces the image exactly (bit for bit when H
and W are powers of two, where these coordinates are exact in floating point).
"""

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias


def identity_grid(height: int, width: int, device=None, dtype=None) -> torch.Tensor:
    """Normalized pixel centres (1, H, W, 2) as (x, y), the ``grid_sample`` grid of the identity warp."""
    xs = (torch.arange(width, device=device, dtype=dtype) * 2 + 1) / width - 1
    ys = (torch.arange(height, device=device, dtype=dtype) * 2 + 1) / height - 1
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize a flow (B, 2, h, w) to (H, W); normalized units need no rescaling."""
    if tuple(flow.shape[-2:]) == tuple(size):
        return flow
    return F.interpolate(flow, size=size, mode="bilinear", align_corners=False)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp an image (B, C, H, W) by a flow (B, 2, H, W): output(p) = image(p + flow(p)).

    Bilinear ``grid_sample`` with ``align_corners=False`` and border padding (samples past the edge repeat it).
    """
    height, width = image.shape[-2:]
    grid = identity_grid(height, width, image.device, image.dtype) + flow.permute(0, 2, 3, 1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
