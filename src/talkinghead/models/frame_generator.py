"""Warp the reference image by the motion-VAE's dense flow and synthesize the frame (VividTalk §3.3, Fig. 2).

"We warp the reference image based on the dense motion map … and obtain the deformed image, which will be
taken as the input to the generator with the occlusion map to synthesize the final video frame."
The flow convention is :mod:`talkinghead.render.warp`'s.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from torch import nn

from talkinghead.models.blocks import ConvBlock, ResidualBlock, UpBlock, group_norm
from talkinghead.render.warp import resize_flow, warp


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
        # The few-channel maps are upsampled in float32, channels first: several times faster there than in
        # the bfloat16 / channels-last layout of the networks at inference (a no-op in training).
        flow, occlusion = flow.float().contiguous(), occlusion.float().contiguous()
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
        synthesized = torch.sigmoid(self.out(x)).float()
        synthesized = F.interpolate(synthesized, size=size, mode="bilinear", align_corners=False)
        frame = occlusion * warped + (1.0 - occlusion) * synthesized
        return {"frame": frame, "warped": warped, "occlusion": occlusion}
