"""Warp the reference image by the motion-VAE's dense flow and synthesize the frame (VividTalk §3.3, Fig. 2).

"We warp the reference image based on the dense motion map … and obtain the deformed image, which will be
taken as the input to the generator with the occlusion map to synthesize the final video frame."

Flow convention: see :mod:`talkinghead.models.motion_vae` — (B, 2, h, w) backward displacements in
``grid_sample`` normalized units with ``align_corners=False``, x then y. :func:`identity_grid` gives the
normalized centre of every pixel, ``((2j + 1)/W − 1, (2i + 1)/H − 1)``, which ``grid_sample`` maps back to
pixel (i, j) itself, so zero flow reproduces the image exactly (bit for bit when H and W are powers of two,
where these coordinates are exact in floating point).
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from torch import nn

from talkinghead.models.motion_vae import ConvBlock, UpBlock, group_norm


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


class ResidualBlock(nn.Module):
    """x + conv(GN(ReLU(conv(x)))) — the residual blocks of the generator's bottleneck."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), group_norm(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1), group_norm(channels),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FrameGenerator(nn.Module):
    """Encoder–decoder with residual blocks: (warped reference, occlusion) → frame.

    The encoder's first convolution has stride 2, so the network works at H/2 and below; it outputs a
    synthesized image S at H/2, bilinearly upsampled, and the frame is ``O·warped + (1 − O)·S`` with O the
    occlusion map: the warp supplies the full-resolution detail where the reference is visible, the generator
    fills what the warp cannot show (the mouth interior, disoccluded background).

    Args:
        channels: encoder widths; ``channels[0]`` at H/2, each further one halves the resolution again.
        num_residual: residual blocks at the bottom.
    """

    def __init__(self, channels: Sequence[int] = (32, 64, 128), num_residual: int = 2) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(4, channels[0], 3, stride=2, padding=1), group_norm(channels[0]), nn.ReLU(inplace=True)
        )
        self.down = nn.ModuleList(
            nn.Sequential(ConvBlock(a, b), nn.AvgPool2d(2)) for a, b in zip(channels[:-1], channels[1:], strict=True)
        )
        self.residual = nn.Sequential(*(ResidualBlock(channels[-1]) for _ in range(num_residual)))
        self.up = nn.ModuleList(
            UpBlock(b, a, a) for a, b in zip(reversed(channels[:-1]), reversed(channels[1:]), strict=True)
        )
        self.out = nn.Conv2d(channels[0], 3, 3, padding=1)

    def forward(self, reference: torch.Tensor, flow: torch.Tensor, occlusion: torch.Tensor) -> dict[str, torch.Tensor]:
        """Reference image (B, 3, H, W) in [0, 1], flow (B, 2, h, w), occlusion (B, 1, h, w) →
        ``{"frame", "warped", "occlusion"}``, all at (H, W); flow and occlusion are resized bilinearly."""
        size = reference.shape[-2:]
        warped = warp(reference, resize_flow(flow, size))
        occlusion = F.interpolate(occlusion, size=size, mode="bilinear", align_corners=False)
        x = self.stem(torch.cat((warped, occlusion), dim=1))
        skips = []
        for block in self.down:
            skips.append(x)
            x = block(x)
        x = self.residual(x)
        for block, skip in zip(self.up, reversed(skips), strict=True):
            x = block(x, skip)
        synthesized = F.interpolate(torch.sigmoid(self.out(x)), size=size, mode="bilinear", align_corners=False)
        frame = occlusion * warped + (1.0 - occlusion) * synthesized
        return {"frame": frame, "warped": warped, "occlusion": occlusion}
