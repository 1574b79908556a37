"""The rasterizer interface shared by the two backends.

VividTalk renders the driven mesh with its normalized-coordinate colours (Eq. 9) into the projection
texture PT_in (Eq. 10). Both backends (:mod:`.torch_backend`, :mod:`.nvdiffrast_backend`) follow one
convention, so a model trained with one renders identically with the other:

* input: screen-space vertices (B, N, 3) = (u, v, depth) exactly as
  :meth:`talkinghead.face.camera.PerspectiveCamera.project` returns them — pixels from the top-left
  *corner* of the image, ``u`` right, ``v`` down, depth > 0 in front of the camera (smaller = nearer);
  triangles (F, 3) long; output size (H, W);
* row 0 of every output is the top of the image; pixel (row i, column j) has its centre at
  ``(u, v) = (j + 0.5, i + 0.5)``;
* a pixel is covered by a triangle when its centre lies inside the triangle *or on its boundary*
  (all three edge functions ≥ 0). A centre exactly on an edge shared by two triangles goes to the
  nearer one, equal depths to the lower triangle id, so shared edges leave no cracks (up to float32
  rounding for a centre within about 1e-5 px of the edge) and results never depend on triangle order;
* both faces rasterize unless ``cull_backfaces=True``; a front face winds counter-clockwise as seen by
  the camera, i.e. on the displayed image (the canonical mesh's winding), so its signed area
  ``(u1 − u0)(v2 − v0) − (u2 − u0)(v1 − v0)`` is negative, ``v`` pointing down;
* barycentrics are perspective-correct: ``λ_i ∝ β_i / depth_i`` with β the screen-space (affine)
  barycentrics, so interpolated attributes are exact for planar triangles under the pinhole camera;
  depth is the true camera depth at the pixel centre, ``1 / Σ β_i / depth_i``;
* triangles with a vertex at depth ≤ 0 (behind the camera) are not drawn, nor are zero-area ones.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch

BACKGROUND_DEPTH = float("inf")


@dataclass
class RasterOutput:
    """Per-pixel result of rasterization.

    Attributes:
        triangle_id: (B, H, W) long, index into the triangles; −1 = background.
        barycentrics: (B, H, W, 3) perspective-correct weights of the triangle's vertices 0, 1, 2
            (sum 1 on covered pixels, 0 on background); differentiable w.r.t. the vertex positions
            except across silhouettes and occlusion boundaries.
        depth: (B, H, W) camera depth of the visible surface; ``+inf`` on background.
        native: backend-specific state reused by :meth:`Rasterizer.interpolate` and
            :meth:`Rasterizer.antialias` (nvdiffrast: its raster tensor and clip-space positions).
    """

    triangle_id: torch.Tensor
    barycentrics: torch.Tensor
    depth: torch.Tensor
    native: Any = None

    @property
    def mask(self) -> torch.Tensor:
        """Coverage (B, 1, H, W) float {0, 1}."""
        return (self.triangle_id >= 0).unsqueeze(1).to(self.barycentrics.dtype)


def signed_area(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Twice the signed screen area of triangles with corners (x, y) (..., 3) → (...); < 0 = front face."""
    return (x[..., 1] - x[..., 0]) * (y[..., 2] - y[..., 0]) - (x[..., 2] - x[..., 0]) * (y[..., 1] - y[..., 0])


def check_inputs(screen: torch.Tensor, triangles: torch.Tensor, size: tuple[int, int]) -> None:
    if screen.ndim != 3 or screen.shape[-1] != 3:
        raise ValueError(f"screen vertices must be (B, N, 3) = (u, v, depth), got {tuple(screen.shape)}")
    if triangles.ndim != 2 or triangles.shape[-1] != 3:
        raise ValueError(f"triangles must be (F, 3), got {tuple(triangles.shape)}")
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"size must be (H, W) with H, W > 0, got {size}")


class Rasterizer(ABC):
    """Rasterize screen-space triangles and interpolate vertex attributes (conventions: module doc)."""

    name: str

    @abstractmethod
    def rasterize(
        self,
        screen: torch.Tensor,
        triangles: torch.Tensor,
        size: tuple[int, int],
        cull_backfaces: bool = False,
    ) -> RasterOutput:
        """Screen vertices (B, N, 3), triangles (F, 3), size (H, W) → :class:`RasterOutput`."""

    def interpolate(
        self,
        attributes: torch.Tensor,
        raster: RasterOutput,
        triangles: torch.Tensor,
        background: float = 0.0,
    ) -> torch.Tensor:
        """Vertex attributes (B, N, C) or (N, C) → image (B, C, H, W), ``background`` where uncovered.

        Differentiable w.r.t. the attributes and, through ``raster.barycentrics``, the vertex positions.
        """
        batch, height, width = raster.triangle_id.shape
        if attributes.ndim == 2:
            attributes = attributes.unsqueeze(0).expand(batch, -1, -1)
        channels = attributes.shape[-1]
        flat_id = raster.triangle_id.reshape(-1)
        pixels = torch.nonzero(flat_id >= 0).squeeze(1)  # (P,) covered pixels
        item = torch.div(pixels, height * width, rounding_mode="floor")
        vertex = triangles.index_select(0, flat_id[pixels]) + (item * attributes.shape[1]).unsqueeze(1)
        values = attributes.reshape(-1, channels).index_select(0, vertex.view(-1)).view(-1, 3, channels)
        weights = raster.barycentrics.reshape(-1, 3).index_select(0, pixels).to(values.dtype)
        blended = torch.bmm(weights.unsqueeze(1), values).squeeze(1)  # (P, C)
        image = attributes.new_full((batch * height * width, channels), background)
        image.index_put_((pixels,), blended)
        return image.view(batch, height, width, channels).permute(0, 3, 1, 2).contiguous()

    def antialias(self, image: torch.Tensor, raster: RasterOutput) -> torch.Tensor:
        """Smooth silhouette edges of a colour image (B, C, H, W); identity unless the backend has it."""
        return image
