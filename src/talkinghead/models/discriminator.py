"""Multi-scale patch discriminator and the adversarial / feature-matching losses (VividTalk §3.4).

The paper trains the mesh-to-video stage with a VGG-19 perceptual loss and a feature-matching loss "to
stabilize the training as the generator has to produce realistic results"; feature matching compares the
discriminator's intermediate features of real and generated frames (pix2pixHD), so a discriminator is
trained alongside. Each scale is a PatchGAN (strided 4×4 convolutions) on the image resized by its factor.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from torch import nn

GAN_LOSSES = ("lsgan", "hinge")


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


def generator_adversarial_loss(fake: list[tuple[list[torch.Tensor], torch.Tensor]], kind: str) -> torch.Tensor:
    """The generator's GAN term, averaged over scales: LSGAN ``(D(G) − 1)²`` or hinge ``−D(G)``."""
    if kind not in GAN_LOSSES:
        raise ValueError(f"gan loss must be one of {GAN_LOSSES}, got {kind!r}")
    terms = [((logits - 1.0).square() if kind == "lsgan" else -logits).mean() for _, logits in fake]
    return torch.stack(terms).mean()


def discriminator_loss(
    real: list[tuple[list[torch.Tensor], torch.Tensor]], fake: list[tuple[list[torch.Tensor], torch.Tensor]], kind: str
) -> torch.Tensor:
    """The discriminator's loss averaged over scales: LSGAN ``(D(x) − 1)² + D(G)²`` or hinge
    ``relu(1 − D(x)) + relu(1 + D(G))``."""
    if kind not in GAN_LOSSES:
        raise ValueError(f"gan loss must be one of {GAN_LOSSES}, got {kind!r}")
    terms = []
    for (_, real_logits), (_, fake_logits) in zip(real, fake, strict=True):
        if kind == "lsgan":
            terms.append((real_logits - 1.0).square().mean() + fake_logits.square().mean())
        else:
            terms.append(F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())
    return torch.stack(terms).mean()


def feature_matching_loss(
    real: list[tuple[list[torch.Tensor], torch.Tensor]], fake: list[tuple[list[torch.Tensor], torch.Tensor]]
) -> torch.Tensor:
    """L_fm (§3.4): mean L1 between the discriminator features of real (detached) and generated frames."""
    terms = [
        (fake_feature - real_feature.detach()).abs().mean()
        for (real_features, _), (fake_features, _) in zip(real, fake, strict=True)
        for real_feature, fake_feature in zip(real_features, fake_features, strict=True)
    ]
    return torch.stack(terms).mean()
