"""Perceptual losses for the mesh-to-video stage (VividTalk §3.4: "the perceptual loss L_perc based on the
pre-trained VGG-19 network is used as the main driving loss").

* :class:`VGG19Pyramid`: the paper's loss in the pyramid form of FOMM (whose generator VividTalk's follows):
  L1 between VGG-19 ``relu1_1 … relu5_1`` features of the generated and real frame at several image scales.
  The ImageNet weights are read from a local file — a path you pass, or torchvision's cache
  (``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth``) — and never downloaded; without them construction
  fails with one line saying where to put the file.
* :class:`GradientPyramid`: a weight-free stand-in for the embedded (tiny) configs, which must run offline
  and without third-party weights: L1 between the images and their finite-difference gradients at the same
  scales.
  It rewards sharp, aligned edges as the low VGG layers do, but has no semantic features; it is a departure
  from the paper made so the default path needs no download.

Both take (generated, target) images (B, 3, H, W) in [0, 1] and return a scalar; the target is detached.
"""

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from torch import nn

PERCEPTUAL_KINDS = ("vgg19", "gradients")
# Indices of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 in torchvision's ``vgg19().features``.
VGG19_LAYERS = (1, 6, 11, 20, 29)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _pyramid(image: torch.Tensor, scales: Sequence[float]) -> list[torch.Tensor]:
    return [
        image
        if scale == 1.0
        else F.interpolate(image, scale_factor=scale, mode="bilinear", align_corners=False, antialias=True)
        for scale in scales
    ]


def vgg19_weights_path(path: str | Path | None = None) -> Path:
    """The VGG-19 ImageNet state dict to load: ``path``, or torchvision's cached download when None."""
    if path is not None:
        return Path(path).expanduser()
    from torchvision.models import VGG19_Weights

    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]


class VGG19Pyramid(nn.Module):
    """L_perc: Σ_scales Σ_layers w_l · mean|VGG_l(x̂) − VGG_l(x)| over an image pyramid (frozen VGG-19).

    Args:
        weights: path of torchvision's VGG-19 ImageNet state dict (``vgg19-dcbb9e9d.pth``); None looks in
            torchvision's cache. A missing file raises :class:`FileNotFoundError` (one line, no download).
        scales: image scales of the pyramid.
        layer_weights: weights of relu1_1 … relu5_1.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        scales: Sequence[float] = (1.0, 0.5, 0.25, 0.125),
        layer_weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0, 1.0),
    ) -> None:
        super().__init__()
        from torchvision.models import vgg19

        path = vgg19_weights_path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"VGG-19 weights not found at {path}: put torchvision's vgg19-dcbb9e9d.pth there or pass "
                "perceptual_args.weights=PATH (nothing is downloaded), or use perceptual: gradients"
            )
        network = vgg19(weights=None)
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.features = network.features[: VGG19_LAYERS[-1] + 1].eval().requires_grad_(False)
        self.scales = tuple(scales)
        self.layer_weights = tuple(layer_weights)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "VGG19Pyramid":
        """The feature extractor stays in eval mode."""
        return super().train(False)

    def _features(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = (image - self.mean) / self.std
        out = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in VGG19_LAYERS:
                out.append(x)
        return out

    def forward(self, generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = generated.new_zeros(())
        for fake, real in zip(_pyramid(generated, self.scales), _pyramid(target.detach(), self.scales), strict=True):
            with torch.no_grad():
                real_features = self._features(real)
            for weight, a, b in zip(self.layer_weights, self._features(fake), real_features, strict=True):
                loss = loss + weight * (a - b).abs().mean()
        return loss


class GradientPyramid(nn.Module):
    """Weight-free L_perc stand-in: Σ_scales mean|x̂ − x| + mean|∇x̂ − ∇x| over an image pyramid.

    ∇ is the forward difference along x and y (averaged); the pyramid is antialiased bilinear downsampling.
    """

    def __init__(self, scales: Sequence[float] = (1.0, 0.5, 0.25, 0.125)) -> None:
        super().__init__()
        self.scales = tuple(scales)

    def forward(self, generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = generated.new_zeros(())
        for fake, real in zip(_pyramid(generated, self.scales), _pyramid(target.detach(), self.scales), strict=True):
            error = fake - real
            gradient = (error.diff(dim=-1).abs().mean() + error.diff(dim=-2).abs().mean()) / 2
            loss = loss + error.abs().mean() + gradient
        return loss


def build_perceptual_loss(kind: str, **kwargs) -> nn.Module:
    """``"vgg19"`` → :class:`VGG19Pyramid` (the paper's), ``"gradients"`` → :class:`GradientPyramid` (weight-free)."""
    if kind == "vgg19":
        return VGG19Pyramid(**kwargs)
    if kind == "gradients":
        return GradientPyramid(**kwargs)
    raise ValueError(f"perceptual loss must be one of {PERCEPTUAL_KINDS}, got {kind!r}")
