"""Synthetic video frames by mesh-guided warping of one portrait (the embedded corpus' frames).

The portrait carries a fitted mesh, ``S_src = (S̄ + α_src U_id + β_src U_exp) ⊗ P_ref`` (Eq. 4). A frame for
a driven mesh ``S_drv = (S̄ + α U_id + β U_exp + O_lip) ⊗ P`` is a *backward warp* of the portrait:

1. the driven mesh is rasterized (plus a fan of triangles over the inner-lip loop, which the model leaves
   as a hole); a covered pixel hits a triangle at perspective-correct barycentrics λ. The same triangle
   and λ on the source mesh is the same surface point, so the 3-D source point ``Σ λ_i S_src,i`` projected
   by the camera is where the portrait shows that point: the pixel samples the portrait there. The flow
   is that sample position minus the pixel centre;
2. outside the face the flow is extended smoothly (push-pull fill, a low-resolution Gaussian blur, and a
   falloff to zero with distance from the face), so hair and ears follow the head while far background
   stays put; rows below the chin are faded to zero flow, so the torso stays still;
3. the portrait is sampled with ``grid_sample``;
4. inside the driven inner-lip polygon a mouth interior (a dark cavity with a light teeth band under the
   upper lip) is blended in, in proportion to how much wider the driven opening is than the portrait's own
   (so driven == source returns the portrait, mouth included;
   :mod:`talkinghead.render.mouth_interior`, which stage 2 can paint the same way).

*Identity reshaping*: a driven mesh built with another α than the fitted one reshapes the face through the
same warp (a wider jaw in ``S_drv`` pulls the portrait's jaw outwards), which is how the corpus varies
identities from one photo.

Pixel convention: the camera's (:mod:`talkinghead.face.camera`): origin at the top-left *corner*, pixel
(i, j) centred at (j + 0.5, i + 0.5). ``grid_sample(..., align_corners=False)`` maps the normalized
coordinate −1 to the left edge of column 0 and +1 to the right edge of column W − 1, so a sample position
(u, v) in camera pixels is ``(2u / W − 1, 2v / H − 1)`` exactly, with no half-pixel shift.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias

from talkinghead.face.camera import PerspectiveCamera
from talkinghead.face.morphable_model import MorphableModel
from talkinghead.render.base import Rasterizer
from talkinghead.render.flow_extension import extend_flow
from talkinghead.render.mouth_interior import (
    LipFan,
    interior_colour,
    interior_opacity,
    lips_chroma,
    smoothstep,
    toned_to_portrait,
)

CHIN_VERTEX = 152  # FaceMesh landmark at the bottom of the chin


@dataclass
class WarpField:
    """Where every frame pixel samples the portrait, and the mouth interior to paint over it.

    Attributes:
        sample: (B, H, W, 2) sample positions (u, v) in portrait pixels (camera convention).
        face: (B, 1, H, W) coverage of the driven face mesh (the mouth fan excluded).
        mouth: (B, 1, H, W) coverage of the driven inner-lip polygon (the fan).
        lip_coordinate: (B, 1, H, W) inside the mouth, 0 on the upper inner lip, 0.5 at the fan's hub
            (half-way between the lips' middles), 1 on the lower inner lip (interpolated over the fan); 0 elsewhere.
        opening: (B,) opacity of the mouth interior (:func:`~talkinghead.render.mouth_interior.interior_opacity`).
    """

    sample: torch.Tensor
    face: torch.Tensor
    mouth: torch.Tensor
    lip_coordinate: torch.Tensor
    opening: torch.Tensor


class MeshWarpRenderer:
    """Render frames of a portrait driven by meshes (see the module docstring for the method).

    Args:
        model: the morphable model whose topology the vertices use (its triangles and ``lip_inner`` loop).
        camera: the crop camera of the portrait and the meshes (its ``image_size`` is the frame size).
        rasterizer: any backend of :func:`talkinghead.render.make_rasterizer`.
        reach: distance (px) over which the flow outside the face fades: the falloff is
            ``clamp(2 · G_reach * face, 0, 1)``, 1 at the face border, about 0.3 at ``reach`` px and
            0.05 at twice that.
        smoothing: Gaussian sigma (px) of the flow outside the face.
        torso_margin: the still region starts this many px below the lower of the source and driven chins
            and reaches zero flow ``torso_ramp`` px further down.
    """

    def __init__(
        self,
        model: MorphableModel,
        camera: PerspectiveCamera,
        rasterizer: Rasterizer,
        reach: float = 32.0,
        smoothing: float = 6.0,
        torso_margin: float = 4.0,
        torso_ramp: float = 20.0,
    ) -> None:
        self.camera = camera
        self.rasterizer = rasterizer
        self.size = (camera.image_size, camera.image_size)
        self.reach, self.smoothing = reach, smoothing
        self.torso_margin, self.torso_ramp = torso_margin, torso_ramp
        self.fan = LipFan(model)
        self.lips = model.region("lips").cpu()
        self.num_face_triangles = model.triangles.shape[0]
        self.triangles = torch.cat((model.triangles.cpu(), self.fan.triangles), dim=0)  # both faces rasterize

    def warp_field(self, source_vertices: torch.Tensor, driven_vertices: torch.Tensor) -> WarpField:
        """Sampling positions for driven meshes (B, N, 3) given the source mesh (N, 3), both world cm."""
        batch = driven_vertices.shape[0]
        height, width = self.size
        device, dtype = driven_vertices.device, driven_vertices.dtype
        triangles = self.triangles.to(device)
        source = self.fan.with_hub(source_vertices.to(dtype)[None])
        driven = self.fan.with_hub(driven_vertices)
        driven_screen = self.camera.project(driven)
        source_screen = self.camera.project(source)
        raster = self.rasterizer.rasterize(driven_screen, triangles, self.size)
        attributes = torch.cat((source, self.fan.lip_coordinate.to(device, dtype)[None, :, None]), dim=-1)
        interpolated = self.rasterizer.interpolate(attributes.expand(batch, -1, -1), raster, triangles)
        covered = raster.mask
        mouth = (raster.triangle_id >= self.num_face_triangles).unsqueeze(1).to(dtype)
        face = covered - mouth
        sampled = self.camera.project(interpolated[:, :3].permute(0, 2, 3, 1))[..., :2].permute(0, 3, 1, 2)
        rows = torch.arange(height, device=device, dtype=dtype) + 0.5
        cols = torch.arange(width, device=device, dtype=dtype) + 0.5
        centres = torch.stack(torch.meshgrid(cols, rows, indexing="xy"), dim=0)[None]  # (1, 2, H, W) as (u, v)
        flow = (sampled - centres) * covered
        flow = extend_flow(flow, covered, self.smoothing, self.reach)
        chin = torch.maximum(driven_screen[:, CHIN_VERTEX, 1], source_screen[:, CHIN_VERTEX, 1].expand(batch))
        still = smoothstep((rows[None, :] - chin[:, None] - self.torso_margin) / self.torso_ramp)
        flow = flow * (1.0 - still)[:, None, :, None]
        loop = self.fan.loop
        opening = interior_opacity(source_screen[:, loop, :2].expand(batch, -1, -1), driven_screen[:, loop, :2])
        return WarpField(
            sample=(centres + flow).permute(0, 2, 3, 1),
            face=face,
            mouth=mouth,
            lip_coordinate=interpolated[:, 3:] * mouth,
            opening=opening,
        )

    def render(
        self, portrait: torch.Tensor, source_vertices: torch.Tensor, driven_vertices: torch.Tensor
    ) -> torch.Tensor:
        """Frames (B, C, H, W) of a portrait (C, H, W) in [0, 1] for driven meshes (B, N, 3).

        ``source_vertices`` (N, 3) is the portrait's fitted mesh posed at P_ref (world cm). With C = 3 the
        mouth interior is painted; other channel counts (e.g. coordinate images) are only warped.
        """
        field = self.warp_field(source_vertices, driven_vertices)
        batch = driven_vertices.shape[0]
        height, width = self.size
        scale = torch.tensor([2.0 / width, 2.0 / height], device=portrait.device, dtype=portrait.dtype)
        grid = field.sample * scale - 1.0
        frames = F.grid_sample(
            portrait[None].expand(batch, -1, -1, -1), grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        if portrait.shape[0] != 3:
            return frames
        mouth, coverage = interior_colour(field.lip_coordinate, field.mouth)
        lips = self.camera.project(source_vertices[None].to(frames.dtype))[:, self.lips.to(frames.device), :2]
        mouth = toned_to_portrait(mouth, lips_chroma(portrait[None].to(frames.dtype), lips))
        alpha = coverage * field.opening[:, None, None, None]
        return frames * (1.0 - alpha) + mouth * alpha
