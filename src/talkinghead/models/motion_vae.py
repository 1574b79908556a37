"""The dual-branch motion-VAE of VividTalk's mesh-to-video stage (§3.3, Fig. 5).

* facial branch: an encoder on ``concat(PT_ref, PT_d)`` (the projection textures of Eq. 10) followed by an
  MLP that outputs the latent ``(μ, log σ²)``; a sample ``z = μ + σ·ε`` in training, ``μ`` at inference, is
  decoded into the 2-D facial motion features. The MLP is applied at every position of the encoder's
  bottleneck grid (1×1 convolutions), so the latent keeps the face's layout, and the decoder receives the
  encoder's skip features as in an hourglass (FOMM's dense-motion network), which carry the fine
  alignment the bottleneck cannot;
* lip branch: an :class:`Hourglass` on the difference of the driven and reference lip Gaussian maps
  ``G_d − G_ref`` → lip motion features;
* :class:`MotionDecoder`: the concatenated features → a dense flow (2×H×W) and an occlusion map
  (1×H×W, sigmoid).

The flow follows :mod:`talkinghead.render.warp`'s convention (backward displacements in ``grid_sample``'s
normalized coordinates, ``align_corners=False``); zero flow is the identity.

The ablation of Fig. 8 drops the lip branch (``lip_branch=False``).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from talkinghead.models.blocks import ConvBlock, DownBlock, UpBlock


def _decoder(widths: Sequence[int], out_channels: int) -> tuple[nn.ModuleList, int]:
    """Up blocks mirroring encoder ``widths`` (input first); each is at least ``out_channels`` wide.

    Returns the blocks and the width of the last one.
    """
    blocks, width = [], widths[-1]
    for skip in reversed(widths[:-1]):
        blocks.append(UpBlock(width, skip, max(skip, out_channels)))
        width = max(skip, out_channels)
    return nn.ModuleList(blocks), width


class Hourglass(nn.Module):
    """U-shaped encoder–decoder (B, C_in, H, W) → (B, C_out, H, W); H and W divisible by ``2^len(channels)``.

    ``channels[i]`` is the width after the i-th halving; the decoder mirrors them with skip connections.
    """

    def __init__(self, in_channels: int, out_channels: int, channels: Sequence[int] = (32, 64, 128)) -> None:
        super().__init__()
        widths = [in_channels, *channels]
        self.down = nn.ModuleList(DownBlock(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.up, width = _decoder(widths, out_channels)
        self.out = nn.Conv2d(width, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            skips.append(x)
            x = block(x)
        for block, skip in zip(self.up, reversed(skips), strict=True):
            x = block(x, skip)
        return self.out(x)


class FacialMotionVAE(nn.Module):
    """Facial branch of Fig. 5: encoder(PT_ref ‖ PT_d) → MLP → (μ, log σ²) → z → facial motion features.

    Args:
        out_channels: width of the facial motion features.
        channels: encoder widths after each halving (the decoder mirrors them, with skips).
        latent_channels: latent width per bottleneck position.
    """

    def __init__(self, out_channels: int = 64, channels: Sequence[int] = (32, 64, 128), latent_channels: int = 32):
        super().__init__()
        widths = [6, *channels]
        self.down = nn.ModuleList(DownBlock(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        bottom = channels[-1]
        self.mlp = nn.Sequential(
            nn.Conv2d(bottom, bottom, 1), nn.ReLU(inplace=True), nn.Conv2d(bottom, 2 * latent_channels, 1)
        )
        self.from_latent = nn.Sequential(nn.Conv2d(latent_channels, bottom, 1), nn.ReLU(inplace=True))
        self.up, width = _decoder(widths, out_channels)
        self.out = nn.Conv2d(width, out_channels, 1)

    def forward(
        self, pt_reference: torch.Tensor, pt_driven: torch.Tensor, sample: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """PT_ref, PT_d (B, 3, H, W) → (features (B, C, H, W), μ, log σ² (B, Z, H/2^d, W/2^d))."""
        x = torch.cat((pt_reference, pt_driven), dim=1)
        skips = []
        for block in self.down:
            skips.append(x)
            x = block(x)
        mu, logvar = self.mlp(x).chunk(2, dim=1)
        logvar = logvar.clamp(-10.0, 10.0)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        x = self.from_latent(z)
        for block, skip in zip(self.up, reversed(skips), strict=True):
            x = block(x, skip)
        return self.out(x), mu, logvar


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) summed over the latent channels, averaged over batch and positions."""
    return (-0.5 * (1.0 + logvar - mu.square() - logvar.exp())).sum(1).mean()


class MotionDecoder(nn.Module):
    """Concatenated motion features → dense flow (B, 2, H, W) and occlusion (B, 1, H, W) in (0, 1).

    The flow head starts at zero (identity warp) and the occlusion head at sigmoid(3) ≈ 0.95 (trust the
    warped reference), so training starts from "copy the reference". The flow head's output is multiplied
    by ``flow_scale``: facial motion is a few pixels, i.e. a few hundredths in normalized units, and without
    the scale one Adam step on the head's weights moves the flow by tens of pixels.
    """

    def __init__(self, in_channels: int, channels: int = 64, num_layers: int = 2, flow_scale: float = 0.03) -> None:
        super().__init__()
        self.flow_scale = flow_scale
        widths = [in_channels] + [channels] * num_layers
        self.body = nn.Sequential(*(ConvBlock(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)))
        self.flow = nn.Conv2d(channels, 2, 3, padding=1)
        self.occlusion = nn.Conv2d(channels, 1, 3, padding=1)
        nn.init.zeros_(self.flow.weight)
        nn.init.zeros_(self.flow.bias)
        nn.init.constant_(self.occlusion.bias, 3.0)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.body(features)
        return self.flow(x) * self.flow_scale, torch.sigmoid(self.occlusion(x))


@dataclass
class MotionOutput:
    """What the motion-VAE predicts at its working resolution (h, w).

    Attributes:
        flow: (B, 2, h, w) backward flow, normalized units (module docstring).
        occlusion: (B, 1, h, w) in (0, 1); 1 = the warped reference is trusted there.
        mu, logvar: (B, Z, h', w') the facial latent.
    """

    flow: torch.Tensor
    occlusion: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor


class DualBranchMotionVAE(nn.Module):
    """Fig. 5: facial branch (:class:`FacialMotionVAE`) + lip branch (:class:`Hourglass` on ΔG) → flow, occlusion.

    Args:
        num_lip_landmarks: L, the channels of the lip Gaussian maps.
        facial_channels, latent_channels, facial_features: the facial branch's widths.
        lip_channels, lip_features: the lip hourglass' widths (unused with ``lip_branch=False``).
        decoder_channels, decoder_layers: the flow/occlusion decoder.
        lip_branch: False is the "w/o lip branch" ablation of Fig. 8.
    """

    def __init__(
        self,
        num_lip_landmarks: int,
        facial_channels: Sequence[int] = (32, 64, 128),
        latent_channels: int = 32,
        facial_features: int = 64,
        lip_channels: Sequence[int] = (32, 64, 128),
        lip_features: int = 32,
        decoder_channels: int = 64,
        decoder_layers: int = 2,
        lip_branch: bool = True,
    ) -> None:
        super().__init__()
        self.facial = FacialMotionVAE(facial_features, facial_channels, latent_channels)
        self.lip = Hourglass(num_lip_landmarks, lip_features, lip_channels) if lip_branch else None
        self.decoder = MotionDecoder(
            facial_features + (lip_features if lip_branch else 0), decoder_channels, decoder_layers
        )
        self.multiple = 2 ** max(len(facial_channels), len(lip_channels) if lip_branch else 0)

    def forward(
        self,
        pt_reference: torch.Tensor,
        pt_driven: torch.Tensor,
        lip_reference: torch.Tensor,
        lip_driven: torch.Tensor,
        sample: bool = False,
    ) -> MotionOutput:
        """PT_ref, PT_d (B, 3, h, w) and lip maps G_ref, G_d (B, L, h, w) → :class:`MotionOutput`.

        ``sample``: draw z from the posterior (training) instead of using its mean (inference).
        """
        if pt_driven.shape[-1] % self.multiple or pt_driven.shape[-2] % self.multiple:
            raise ValueError(
                f"the motion resolution must be divisible by {self.multiple}, got {tuple(pt_driven.shape[-2:])}"
            )
        features, mu, logvar = self.facial(pt_reference, pt_driven, sample)
        if self.lip is not None:
            features = torch.cat((features, self.lip(lip_driven - lip_reference)), dim=1)
        flow, occlusion = self.decoder(features)
        return MotionOutput(flow=flow, occlusion=occlusion, mu=mu, logvar=logvar)
