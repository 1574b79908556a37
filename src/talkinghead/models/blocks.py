"""Building blocks shared by the networks: the audio projection of both stage-1 decoders and the convolution
blocks of the stage-2 networks (motion-VAE, frame generator).

Normalisation is GroupNorm everywhere: it is batch-independent, so a frame's output never depends on the other
frames of its batch (training batches and inference batches of any size give the same frame).
"""

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from torch import nn


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ConvBlock(nn.Sequential):
    """3×3 convolution → GroupNorm → ReLU (batch-independent, so a frame's output never depends on its batch)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1), group_norm(out_channels), nn.ReLU(inplace=True)
        )


class DownBlock(nn.Sequential):
    """:class:`ConvBlock` then 2×2 average pooling (halves H and W)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(ConvBlock(in_channels, out_channels), nn.AvgPool2d(2))


class UpBlock(nn.Module):
    """Nearest 2× upsampling, concatenation with the skip features, :class:`ConvBlock`."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = ConvBlock(in_channels + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return self.conv(torch.cat((x, skip), dim=1))


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


class AudioProjection(nn.Module):
    """A (B, T, C) → (B, T, D): a projection to D, then a residual centred 1-D conv over time for local context, then
    ``feedforward_layers`` residual position-wise feed-forward blocks (LayerNorm, Linear D → 2D, GELU, Linear 2D → D),
    LayerNorm.

    The projection is one Linear C → D, or with ``hidden`` a two-layer MLP C → hidden → D (GELU). The MLP and the
    feed-forward blocks deepen what each audio frame's features say about its sound without widening the audio a
    frame depends on (:attr:`radius` stays the conv's). Learnt speech features such as wav2vec 2.0's (the paper's A)
    arrive deep already; the weight-free log-mel features do not, and the tiny facial-motion config gives them both
    (docs/RESULTS.md, "sixteenth pass"). The defaults (one Linear, no blocks) are the single projection the paper's
    description implies.
    """

    def __init__(
        self,
        audio_dim: int,
        d_model: int,
        kernel_size: int = 3,
        dropout: float = 0.0,
        feedforward_layers: int = 0,
        hidden: int | None = None,
    ):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"audio_conv_kernel must be odd (centred), got {kernel_size}")
        if feedforward_layers < 0:
            raise ValueError(f"audio_feedforward_layers must be ≥ 0, got {feedforward_layers}")
        if hidden is not None and hidden < 1:
            raise ValueError(f"audio_hidden must be ≥ 1 or None, got {hidden}")
        self.radius = kernel_size // 2
        self.proj = (
            nn.Linear(audio_dim, d_model)
            if hidden is None
            else nn.Sequential(nn.Linear(audio_dim, hidden), nn.GELU(), nn.Linear(hidden, d_model))
        )
        self.conv = nn.Conv1d(d_model, d_model, kernel_size, padding=self.radius)
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)
        self.feedforward = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(d_model), nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Linear(2 * d_model, d_model)
            )
            for _ in range(feedforward_layers)
        )

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = self.proj(audio)
        x = x + self.dropout(self.act(self.conv(x.transpose(1, 2)).transpose(1, 2)))
        for block in self.feedforward:
            x = x + self.dropout(block(x))
        return self.norm(x)
