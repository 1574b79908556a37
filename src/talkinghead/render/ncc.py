"""Normalized coordinate code (Eq. 9) and the projection texture (Eq. 10) of VividTalk.

Every vertex of the mesh is coloured by its normalized position on the *mean* shape,
``NCC_i = (S̄_i − min S̄_i) / (max S̄_i − min S̄_i)``, i ∈ {x, y, z} (Eq. 9), so a colour names a point on
the face whatever the identity, expression or pose. Rendering the posed, driven mesh with these colours
gives the inner-face projection texture PT_in and the inner-face mask M; the outer region PT_out (hair,
neck, torso, background from a face parser) fills the rest: ``PT = PT_in·M + PT_out·(1 − M)`` (Eq. 10).
"""

import torch
from torch import nn

from talkinghead.face.camera import PerspectiveCamera
from talkinghead.face.morphable_model import MorphableModel
from talkinghead.render.base import Rasterizer


def ncc_colors(mean_shape: torch.Tensor) -> torch.Tensor:
    """Eq. 9: mean shape S̄ (N, 3) → NCC colours (N, 3) in [0, 1], (R, G, B) = normalized (x, y, z)."""
    low = mean_shape.amin(0)
    extent = (mean_shape.amax(0) - low).clamp_min(torch.finfo(mean_shape.dtype).tiny)
    return (mean_shape - low) / extent


def compose_projection_texture(pt_in: torch.Tensor, mask: torch.Tensor, pt_out: torch.Tensor) -> torch.Tensor:
    """Eq. 10: ``PT = PT_in·M + PT_out·(1 − M)``; PT_in, PT_out (B, C, H, W), M (B, 1, H, W)."""
    return pt_in * mask + pt_out * (1 - mask)


class NCCRenderer(nn.Module):
    """Render posed meshes with their NCC colours: world vertices (B, N, 3) → (PT_in, M).

    Args:
        model: the morphable model; its mean shape gives the colours (Eq. 9), its triangles the surface.
        camera: projects world points to the square image of ``camera.image_size`` pixels.
        rasterizer: any backend from :func:`talkinghead.render.make_rasterizer`.
        antialias: smooth PT_in's silhouette where the backend can (nvdiffrast); off by default so both
            backends render the same texture. M is always the hard coverage mask.
    """

    def __init__(
        self,
        model: MorphableModel,
        camera: PerspectiveCamera,
        rasterizer: Rasterizer,
        antialias: bool = False,
    ) -> None:
        super().__init__()
        self.camera = camera
        self.rasterizer = rasterizer
        self.antialias = antialias
        self.register_buffer("colors", ncc_colors(model.mean_shape.detach().clone()))
        self.register_buffer("triangles", model.triangles.detach().clone())

    def forward(self, vertices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World-space posed vertices (B, N, 3) → (PT_in, M).

        PT_in is (B, 3, H, W) in [0, 1], 0 off the face; M is (B, 1, H, W) in {0, 1}. Differentiable
        w.r.t. the vertices inside the face (through the barycentrics).
        """
        size = (self.camera.image_size, self.camera.image_size)
        raster = self.rasterizer.rasterize(self.camera.project(vertices), self.triangles, size)
        pt_in = self.rasterizer.interpolate(self.colors.to(vertices.dtype), raster, self.triangles)
        if self.antialias:
            pt_in = self.rasterizer.antialias(pt_in, raster)
        return pt_in, raster.mask
