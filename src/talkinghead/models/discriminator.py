"""Multi-scale patch discriminator (VividTalk §3.4); its losses are in :mod:`talkinghead.models.losses`.

The paper trains the mesh-to-video stage with a VGG-19 perceptual loss and a feature-matching loss "to
stabilize the training as the generator has to produce realistic results"; feature matching compares the
discriminator's intermediate features of real and generated frames (pix2pixHD), so a discriminator is
trained alongside. Each scale is a PatchGAN (strided 4×4 convolutions) on the image resized by its factor.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from torch import nn


class PatchDiscriminator(nn.Module):
    """Image (B, 3, H, W) → (features of every layer, patch logits (B, 1, h, w))."""

    def __init__(self, channels: int = 64, num_layers: int = 4, max_channels: int = 512) -> None:
        super().__init__()
        layers, width = [], 3
        for i in range(num_layers):
            out = min(channels * 2**i, max_channels)
            norm = nn.InstanceNorm2d(out, affine=True) if i else nn.Identity()
            layers.append(nn.Sequential(nn.Conv2d(width, out, 4, stride=2, padding=1), norm, nn.LeakyReLU(0.2)))
            width = out
        self.layers = nn.ModuleList(layers)
        self.logits = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        features = []
        x = image
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features, self.logits(x)


class MultiScaleDiscriminator(nn.Module):
    """One :class:`PatchDiscriminator` per scale factor (1 = the input size, 0.5 = half, …).

    ``forward`` returns one ``(features, logits)`` pair per scale.
    """

    def __init__(
        self, scales: Sequence[float] = (1.0, 0.5), channels: int = 64, num_layers: int = 4, max_channels: int = 512
    ) -> None:
        super().__init__()
        self.scales = tuple(float(s) for s in scales)
        self.discriminators = nn.ModuleList(PatchDiscriminator(channels, num_layers, max_channels) for _ in self.scales)

    def forward(self, image: torch.Tensor) -> list[tuple[list[torch.Tensor], torch.Tensor]]:
        outputs = []
        for scale, discriminator in zip(self.scales, self.discriminators, strict=True):
            scaled = (
                image
                if scale == 1.0
                else F.interpolate(image, scale_factor=scale, mode="bilinear", align_corners=False, antialias=True)
            )
            outputs.append(discriminator(scaled))
        return outputs
