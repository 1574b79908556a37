"""IResNet, the face-recognition backbone of ArcFace (Deng et al., "ArcFace: Additive angular margin loss for deep
face recognition", CVPR 2019), in the layout of insightface's ``arcface_torch`` model zoo.

A (B, 3, 112, 112) face aligned to the ArcFace template, RGB in [−1, 1], goes through a 3 × 3 stem (64 channels,
BatchNorm, PReLU), four stages of pre-activation residual blocks (64, 128, 256, 512 channels; each stage halves
the resolution in its first block, so 112 → 7), BatchNorm, a fully connected layer from the 512 × 7 × 7 map to
the embedding and a last BatchNorm: (B, D) with D = 512 in the model zoo. The number of blocks per stage (2 2 2 2
for r18, 3 4 6 3 for r34, 3 4 14 3 for r50, 3 13 30 3 for r100) and D are read from the state dict
(:meth:`IResNet.architecture`), so any of them loads from its ``backbone.pth`` with ``weights_only=True``.
The parameter names are the model zoo's, which is what lets its files load strictly.
"""

import re

import torch
from torch import nn

STAGE_WIDTHS = (64, 128, 256, 512)
FINAL_SIDE = 7  # 112 halved by the four stages
BN_EPS = 1e-5


class IBasicBlock(nn.Module):
    """BN → 3 × 3 conv → BN → PReLU → 3 × 3 conv (with the stride) → BN, plus the input (projected by a strided
    1 × 1 conv and BN where the width or resolution changes)."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, eps=BN_EPS)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.prelu = nn.PReLU(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels, eps=BN_EPS)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """(B, 3, 112, 112) aligned faces in [−1, 1] → (B, embedding_dim) identity embeddings (module docstring)."""

    def __init__(self, blocks: tuple[int, int, int, int], embedding_dim: int = 512) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, STAGE_WIDTHS[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(STAGE_WIDTHS[0], eps=BN_EPS)
        self.prelu = nn.PReLU(STAGE_WIDTHS[0])
        in_channels = STAGE_WIDTHS[0]
        for index, (count, width) in enumerate(zip(blocks, STAGE_WIDTHS, strict=True), start=1):
            stage = [IBasicBlock(in_channels if i == 0 else width, width, 2 if i == 0 else 1) for i in range(count)]
            setattr(self, f"layer{index}", nn.Sequential(*stage))
            in_channels = width
        self.bn2 = nn.BatchNorm2d(STAGE_WIDTHS[-1], eps=BN_EPS)
        self.fc = nn.Linear(STAGE_WIDTHS[-1] * FINAL_SIDE * FINAL_SIDE, embedding_dim)
        self.features = nn.BatchNorm1d(embedding_dim, eps=BN_EPS)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(faces)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.features(self.fc(self.bn2(x).flatten(1)))

    @staticmethod
    def architecture(state: dict[str, torch.Tensor]) -> tuple[tuple[int, int, int, int], int]:
        """(blocks per stage, embedding size) of a model-zoo state dict; ``ValueError`` if it holds no IResNet."""
        counts = [0, 0, 0, 0]
        for key in state:
            match = re.fullmatch(r"layer([1-4])\.(\d+)\.conv1\.weight", key)
            if match:
                stage = int(match.group(1)) - 1
                counts[stage] = max(counts[stage], int(match.group(2)) + 1)
        if min(counts) == 0 or "fc.weight" not in state or state["fc.weight"].ndim != 2:
            raise ValueError("not an IResNet state dict (expected keys layer1–4.N.conv1.weight and a 2-D fc.weight)")
        return tuple(counts), int(state["fc.weight"].shape[0])
