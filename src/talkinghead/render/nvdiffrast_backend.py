"""nvdiffrast backend (CUDA): rasterize → interpolate → antialias with the conventions of :mod:`.base`.

nvdiffrast is imported lazily, when a :class:`NvdiffrastRasterizer` is built, so importing
:mod:`talkinghead.render` never needs it. The mapping from our screen space to nvdiffrast's clip space:

* ``w = depth`` and ``x = (2u/W − 1)·w``, ``y = (2v/H − 1)·w``: nvdiffrast's row 0 holds clip
  ``y = −1`` (its samples flip the image before saving), so ``v = 0`` — the top of our image — lands in
  row 0 and the pixel-centre convention matches the torch backend. With ``w = depth`` nvdiffrast's
  barycentrics are perspective-correct, as the torch backend's are;
* ``z`` is the OpenGL depth ``z/w = a + b/depth`` mapping ``[near, far]`` to ``[−1, 1]``, with near and
  far taken from the batch (10 % margin), so the depth test keeps the nearest surface;
* nvdiffrast's ``rast`` channels are ``(u, v, z/w, triangle_id + 1)`` and ``u``, ``v`` weight the
  triangle's vertices 0 and 1 (``interpolate`` computes ``u·a0 + v·a1 + (1 − u − v)·a2``).

Differences from the torch backend: nvdiffrast snaps vertices to its fixed-point sub-pixel grid, so a
pixel centre within a small fraction of a pixel of an edge may go to the other triangle (the GPU test
asks ≥ 99 % equal triangle ids), and triangles crossing the camera plane are clipped rather than
dropped. Back-face culling rasterizes un-shared corners with the back faces collapsed to a point.
"""

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from talkinghead.render.base import BACKGROUND_DEPTH, Rasterizer, RasterOutput, check_inputs, signed_area

INSTALL_HINT = (
    "the nvdiffrast backend needs the nvdiffrast package and a CUDA toolkit for its one-time build: "
    "`pip install -e .[nvdiffrast]` (PyPI package diffrp-nvdiffrast) or "
    "`pip install git+https://github.com/NVlabs/nvdiffrast`; or use backend='torch'"
)
_DEPTH_MARGIN = 0.1


def nvdiffrast_available() -> bool:
    """True when the ``nvdiffrast`` package is installed (without importing it)."""
    return importlib.util.find_spec("nvdiffrast") is not None


def import_nvdiffrast() -> Any:
    """Import ``nvdiffrast.torch`` or raise a :class:`RuntimeError` saying how to install it."""
    try:
        import nvdiffrast.torch as dr
    except ImportError as error:
        raise RuntimeError(f"{INSTALL_HINT} ({error})") from error
    return dr


def _register_jit_plugin(name: str) -> None:
    """Load nvdiffrast's JIT-built plugin from torch's extension cache into ``sys.modules``.

    nvdiffrast builds its CUDA plugin with ``torch.utils.cpp_extension.load`` and then imports it by
    name; recent torch versions load the library without registering it, so that import fails.
    """
    from torch.utils import cpp_extension

    library = Path(cpp_extension._get_build_directory(name, verbose=False)) / f"{name}.so"
    if not library.is_file():
        raise RuntimeError(
            f"nvdiffrast's CUDA plugin {name!r} is missing from {library.parent} after its build; check that "
            f"the CUDA toolkit (nvcc) and ninja are installed. {INSTALL_HINT}"
        )
    spec = importlib.util.spec_from_file_location(name, library)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module


def _create_context(dr: Any, device: torch.device) -> Any:
    try:
        return dr.RasterizeCudaContext(device=device)
    except ImportError as error:
        if not (error.name or "").startswith("nvdiffrast_plugin"):
            raise RuntimeError(f"nvdiffrast's CUDA plugin failed to load ({error}). {INSTALL_HINT}") from error
        _register_jit_plugin(error.name)
        return dr.RasterizeCudaContext(device=device)


@dataclass
class _NativeState:
    rast: torch.Tensor  # (B, H, W, 4) nvdiffrast's raster output
    clip: torch.Tensor  # (B, N, 4) clip-space positions (shared vertices)
    triangles: torch.Tensor  # (F, 3) int32
    topology_hash: Any
    shared: bool  # rast was made from `clip` and `triangles` (False when back faces were culled)


class NvdiffrastRasterizer(Rasterizer):
    """nvdiffrast's CUDA rasterizer behind the :class:`Rasterizer` interface.

    One ``RasterizeCudaContext`` per device is created once; the int32 triangle tensor and its
    antialiasing topology hash are built once per triangle tensor (keyed by its storage, so pass the
    same constant tensor, e.g. the model's ``triangles`` buffer).
    """

    name = "nvdiffrast"

    def __init__(self, device: torch.device | str = "cuda") -> None:
        device = torch.device(device)
        if device.type != "cuda" or not torch.cuda.is_available():
            raise RuntimeError(f"the nvdiffrast backend needs a CUDA device, got {device}; use backend='torch'")
        self._dr = import_nvdiffrast()
        self._contexts = {device: _create_context(self._dr, device)}
        self._topologies: dict[tuple, tuple[torch.Tensor, Any]] = {}

    def _context(self, device: torch.device) -> Any:
        if device not in self._contexts:
            self._contexts[device] = _create_context(self._dr, device)
        return self._contexts[device]

    def _topology(self, triangles: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, Any]:
        key = (triangles.data_ptr(), tuple(triangles.shape), triangles.device, device)
        if key not in self._topologies:
            int_triangles = triangles.to(device=device, dtype=torch.int32).contiguous()
            self._topologies[key] = (int_triangles, self._dr.antialias_construct_topology_hash(int_triangles))
        return self._topologies[key]

    def rasterize(
        self,
        screen: torch.Tensor,
        triangles: torch.Tensor,
        size: tuple[int, int],
        cull_backfaces: bool = False,
    ) -> RasterOutput:
        check_inputs(screen, triangles, size)
        height, width = int(size[0]), int(size[1])
        device = screen.device
        if device.type != "cuda":
            raise RuntimeError(f"the nvdiffrast backend rasterizes CUDA tensors, got {device}")
        int_triangles, topology_hash = self._topology(triangles, device)
        u, v, depth = screen.float().unbind(-1)
        positive = depth.detach()[depth.detach() > 0]
        near = positive.min() * (1 - _DEPTH_MARGIN) if positive.numel() else depth.new_tensor(1.0)
        far = positive.max() * (1 + _DEPTH_MARGIN) if positive.numel() else depth.new_tensor(2.0)
        scale, offset = (far + near) / (far - near), -2 * far * near / (far - near)
        clip = torch.stack(
            ((2 * u / width - 1) * depth, (2 * v / height - 1) * depth, scale * depth + offset, depth), dim=-1
        ).contiguous()
        raster_clip, raster_triangles = clip, int_triangles
        if cull_backfaces:
            raster_clip, raster_triangles = _collapse_back_faces(screen.detach(), clip, int_triangles)
        rast, _ = self._dr.rasterize(self._context(device), raster_clip, raster_triangles, (height, width))
        triangle_id = rast[..., 3].long() - 1
        covered = triangle_id >= 0
        first, second = rast[..., 0], rast[..., 1]
        barycentrics = torch.stack((first, second, 1 - first - second), dim=-1) * covered.unsqueeze(-1)
        surface_depth = offset / torch.where(covered, rast[..., 2] - scale, -1.0)
        return RasterOutput(
            triangle_id=triangle_id,
            barycentrics=barycentrics.to(screen.dtype),
            depth=torch.where(covered, surface_depth, BACKGROUND_DEPTH).to(screen.dtype),
            native=_NativeState(rast, clip, int_triangles, topology_hash, shared=not cull_backfaces),
        )

    def interpolate(
        self,
        attributes: torch.Tensor,
        raster: RasterOutput,
        triangles: torch.Tensor,
        background: float = 0.0,
    ) -> torch.Tensor:
        state = raster.native
        if not isinstance(state, _NativeState) or not state.shared:
            return super().interpolate(attributes, raster, triangles, background)
        values = attributes.float()
        if values.ndim == 2:
            values = values.unsqueeze(0)  # nvdiffrast broadcasts along the minibatch axis
        image, _ = self._dr.interpolate(values.contiguous(), state.rast, state.triangles)
        image = torch.where((raster.triangle_id >= 0).unsqueeze(-1), image, background)
        return image.to(attributes.dtype).permute(0, 3, 1, 2).contiguous()

    def antialias(self, image: torch.Tensor, raster: RasterOutput) -> torch.Tensor:
        """nvdiffrast's analytic antialiasing of silhouette edges (image (B, C, H, W))."""
        state = raster.native
        if not isinstance(state, _NativeState):
            return image
        channels_last = image.float().permute(0, 2, 3, 1).contiguous()
        smoothed = self._dr.antialias(
            channels_last, state.rast, state.clip, state.triangles, topology_hash=state.topology_hash
        )
        return smoothed.to(image.dtype).permute(0, 3, 1, 2).contiguous()


def _collapse_back_faces(
    screen: torch.Tensor, clip: torch.Tensor, triangles: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Un-share the corners (B, 3F, 4) and collapse each back face to its first corner (zero area).

    Triangle ids stay those of ``triangles``; front = negative signed area in (u, v), as in the torch backend.
    """
    corners = screen[:, triangles.long()]  # (B, F, 3, 3)
    area = signed_area(corners[..., 0], corners[..., 1])
    clip_corners = clip[:, triangles.long()]  # (B, F, 3, 4)
    collapsed = clip_corners[:, :, :1].expand_as(clip_corners)
    clip_corners = torch.where((area >= 0)[..., None, None], collapsed, clip_corners)
    flat_triangles = torch.arange(triangles.numel(), device=triangles.device, dtype=torch.int32).view(-1, 3)
    return clip_corners.reshape(clip.shape[0], -1, 4).contiguous(), flat_triangles
