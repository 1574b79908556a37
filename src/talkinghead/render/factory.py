"""Choose a rasterizer backend by name (configs say ``rasterizer: auto | torch | nvdiffrast``)."""

import logging

import torch

from talkinghead.render.base import Rasterizer
from talkinghead.render.torch_backend import TorchRasterizer

BACKENDS = ("auto", "torch", "nvdiffrast")

log = logging.getLogger(__name__)


def make_rasterizer(backend: str = "auto", device: torch.device | str | None = None) -> Rasterizer:
    """Build a rasterizer; both backends follow the conventions of :mod:`talkinghead.render.base`.

    Args:
        backend: ``torch`` (pure PyTorch, any device), ``nvdiffrast`` (CUDA; a :class:`RuntimeError` says
            how to install it when missing) or ``auto``: nvdiffrast when ``device`` is a CUDA device and the
            package imports and builds, otherwise torch.
        device: where rendering will run; default CUDA when available, else CPU.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown rasterizer backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if backend == "torch":
        return TorchRasterizer()
    from talkinghead.render.nvdiffrast_backend import NvdiffrastRasterizer, nvdiffrast_available

    if backend == "nvdiffrast":
        return NvdiffrastRasterizer(device)
    if device.type == "cuda" and torch.cuda.is_available() and nvdiffrast_available():
        try:
            return NvdiffrastRasterizer(device)
        except RuntimeError as error:
            log.warning("nvdiffrast unusable, falling back to the torch rasterizer: %s", error)
    return TorchRasterizer()
