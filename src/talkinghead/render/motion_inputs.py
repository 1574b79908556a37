"""The inputs of the motion-VAE (VividTalk §3.3, Fig. 5), rendered from morphable-model parameters.

For a reference (α, β_ref, O_lip,ref, P_ref) and a driven (α, β_d, O_lip,d, P_d) face:

1. meshes ``M = (S̄ + αU_id + βU_exp + O_lip) ⊗ P`` (Eq. 4, 8);
2. NCC projection textures (Eq. 9) PT_in and inner-face masks M by z-buffer rasterization
   (:class:`~talkinghead.render.NCCRenderer`, nvdiffrast or torch backend);
3. the outer region PT_out from the reference image's labels (:mod:`talkinghead.render.face_parser`):
   the head labels follow the rigid head motion from P_ref to P_d — a 2-D affine map fitted by least
   squares to the projections of the reference-shape mesh under both poses — the torso and background
   stay; the labels are colour-coded (:data:`OUTER_COLORS`); ``PT = PT_in·M + PT_out·(1 − M)`` (Eq. 10);
4. Gaussian heatmaps of the projected lip vertices for reference and driven (the lip branch's input);
5. the mesh correspondence flow on the driven inner face (an optional training signal, not a network input).

Textures are rasterized at ``render_size`` and area-averaged to the networks' ``motion_size`` (so edges
carry sub-pixel position); the heatmaps are drawn at ``motion_size`` directly. Both use cameras that see
exactly what the image camera (``image_size``, ``focal``, ``distance``) sees.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from torch import nn

from talkinghead.conventions import CROP_SIZE
from talkinghead.face.camera import PerspectiveCamera, scaled_camera
from talkinghead.face.morphable_model import MorphableModel
from talkinghead.face.pose import apply_pose, apply_rigid, pose_to_matrix
from talkinghead.render.base import Rasterizer
from talkinghead.render.factory import make_rasterizer
from talkinghead.render.flow_extension import extend_flow
from talkinghead.render.heatmaps import lip_heatmaps
from talkinghead.render.ncc import NCCRenderer, compose_projection_texture
from talkinghead.render.warp import identity_grid

# Colour code of the outer labels (background, head, torso) in PT_out; NCC colours fill the inner face.
PRIOR_SMOOTHING, PRIOR_REACH = 6.0, 32.0  # px at CROP_SIZE² (256²), as the corpus' frame renderer
OUTER_COLORS = ((0.0, 0.0, 0.0), (1.0, 0.0, 1.0), (0.0, 1.0, 1.0))
FLOWS = ("flow_mesh", "flow_prior")  # the optional flow outputs of MotionInputRenderer.forward


def head_motion_theta(reference_screen: torch.Tensor, moved_screen: torch.Tensor, size: int) -> torch.Tensor:
    """Least-squares 2-D affine map, as an ``affine_grid`` θ (B, 2, 3), from moved to reference positions.

    Both (B, N, 2) in pixels of a ``size``² image; θ acts on normalized coordinates (``align_corners=False``).
    """
    normalize = lambda points: 2.0 * points / size - 1.0  # noqa: E731 - one-line helper
    source = normalize(moved_screen.double())
    design = torch.cat((source, torch.ones_like(source[..., :1])), dim=-1)  # (B, N, 3)
    solution = torch.linalg.lstsq(design, normalize(reference_screen.double())).solution  # (B, 3, 2)
    return solution.transpose(1, 2).to(reference_screen.dtype)


def colorize(labels: torch.Tensor) -> torch.Tensor:
    """Soft labels (B, 3, H, W) over (background, head, torso) → PT_out (B, 3, H, W) in :data:`OUTER_COLORS`."""
    colors = torch.tensor(OUTER_COLORS, device=labels.device, dtype=labels.dtype)  # (class, rgb)
    return torch.einsum("bkhw,kc->bchw", labels, colors)


@dataclass
class ReferenceRendering:
    """R reference faces rendered for :meth:`MotionInputRenderer.forward`.

    Attributes:
        shape: (R, N, 3) unposed meshes (Eq. 4 before the pose).
        screen: (R, N, 2) posed vertices projected at ``render_size`` (pixels).
        labels: (R, 3, S, S) outer labels resized to ``render_size``.
        pt: (R, 3, s, s) PT_ref at ``motion_size``.
        heatmaps: (R, L, s, s) lip Gaussian maps G_ref.
    """

    shape: torch.Tensor
    screen: torch.Tensor
    labels: torch.Tensor
    pt: torch.Tensor
    heatmaps: torch.Tensor


class MotionInputRenderer(nn.Module):
    """Morphable-model parameters + the reference's outer labels → PT_ref, PT_d and lip heatmaps.

    Args:
        model: the morphable model of the parameters (its mean shape colours the meshes, Eq. 9).
        camera: the image camera (``image_size`` = the frames' size).
        render_size: rasterization resolution; must be a multiple of ``motion_size``.
        motion_size: resolution of the returned textures and heatmaps (the motion-VAE's).
        rasterizer: ``auto`` | ``torch`` | ``nvdiffrast`` (see :func:`~talkinghead.render.make_rasterizer`);
            the backend is built per device on first use.
        heatmap_sigma: Gaussian σ of the lip heatmaps in ``motion_size`` pixels.
    """

    def __init__(
        self,
        model: MorphableModel,
        camera: PerspectiveCamera | None = None,
        render_size: int = CROP_SIZE,
        motion_size: int = 64,
        rasterizer: str = "auto",
        heatmap_sigma: float = 1.0,
    ) -> None:
        super().__init__()
        if render_size % motion_size:
            raise ValueError(f"render_size ({render_size}) must be a multiple of motion_size ({motion_size})")
        self.model = model
        self.image_camera = camera or PerspectiveCamera()
        self.motion_camera = scaled_camera(motion_size, self.image_camera)
        self.render_size, self.motion_size = render_size, motion_size
        self.backend, self.heatmap_sigma = rasterizer, heatmap_sigma
        self._rasterizers: dict[str, Rasterizer] = {}
        self.ncc = NCCRenderer(model, scaled_camera(render_size, self.image_camera), make_rasterizer("torch", "cpu"))

    def _renderer(self, device: torch.device) -> NCCRenderer:
        if str(device) not in self._rasterizers:
            self._rasterizers[str(device)] = make_rasterizer(self.backend, device)
        self.ncc.rasterizer = self._rasterizers[str(device)]
        return self.ncc

    def unposed(self, alpha: torch.Tensor, face: dict[str, torch.Tensor]) -> torch.Tensor:
        """Eq. 4 before the pose: α (B, K), ``face`` with ``beta`` (B, 52), ``lip_offsets`` (B, L, 3) → (B, N, 3)."""
        return self.model.vertices(alpha, face["beta"], face["lip_offsets"])

    def face_points(self, alpha: torch.Tensor, face: dict[str, torch.Tensor]) -> torch.Tensor:
        """Posed mesh projected into the image: (B, N, 2) (u, v) pixels of the image camera (for the parser)."""
        vertices = apply_pose(self.unposed(alpha, face), face["pose"])
        return self.image_camera.project(vertices)[..., :2]

    def _lip_heatmaps(self, vertices: torch.Tensor) -> torch.Tensor:
        """Posed meshes (B, N, 3) → Gaussian maps (B, L, s, s) of their lip vertices at ``motion_size``."""
        lips = self.motion_camera.project(vertices[:, self.model.lip_ids])
        return lip_heatmaps(lips[..., :2], (self.motion_size, self.motion_size), self.heatmap_sigma)

    def render_reference(
        self, alpha: torch.Tensor, reference: dict[str, torch.Tensor], outer: torch.Tensor
    ) -> ReferenceRendering:
        """What :meth:`forward` needs of R references (arguments as there), rendered once however many driven
        faces and calls pair with them: a stream or a long clip renders its one portrait once."""
        size = self.render_size
        shape = self.unposed(alpha, reference)
        vertices = apply_pose(shape, reference["pose"])
        renderer = self._renderer(alpha.device)
        screen = renderer.camera.project(vertices)
        raster = renderer.rasterizer.rasterize(screen, renderer.triangles, (size, size))
        colors = renderer.colors.expand(alpha.shape[0], -1, -1)
        pt_in = renderer.rasterizer.interpolate(colors, raster, renderer.triangles)
        labels = F.interpolate(
            outer.to(pt_in.dtype), size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
        pt = F.avg_pool2d(compose_projection_texture(pt_in, raster.mask, colorize(labels)), size // self.motion_size)
        return ReferenceRendering(shape, screen[..., :2], labels, pt, self._lip_heatmaps(vertices))

    def forward(
        self,
        alpha: torch.Tensor,
        reference: dict[str, torch.Tensor],
        driven: dict[str, torch.Tensor],
        outer: torch.Tensor,
        pairs: torch.Tensor | None = None,
        flows: tuple[str, ...] = FLOWS,
        rendered: ReferenceRendering | None = None,
    ) -> dict[str, torch.Tensor]:
        """Render the inputs of B (reference, driven) pairs from R distinct references.

        Each reference is rasterized, labelled and turned into lip heatmaps once, however many driven faces
        it pairs with (the pipeline drives one portrait with a batch of faces), or not at all when
        ``rendered`` (:meth:`render_reference` of the same references) is given.

        Args:
            alpha: (R, K) identity of each reference.
            reference: ``beta`` (R, 52), ``pose`` (R, 6), ``lip_offsets`` (R, L, 3).
            driven: ``beta`` (B, 52), ``pose`` (B, 6), ``lip_offsets`` (B, L, 3); a driven face has its
                reference's identity.
            outer: (R, 3, H, W) outer labels of the reference images (:meth:`FaceParser.parse`).
            pairs: (B,) the reference (index into R) of each driven face; None pairs driven i with
                reference i (R = B).
            flows: which of :data:`FLOWS` to return (the flows cost a smooth extension and two more
                interpolated channels, and inference needs them only as the prior).
            rendered: the references already rendered (computed here when None).

        Returns ``pt_reference``, ``pt_driven`` (B, 3, s, s), ``lip_reference``, ``lip_driven`` (B, L, s, s),
        ``mask_driven`` (B, 1, s, s) the driven inner-face coverage M_d, ``vertices_driven`` (B, N, 3) the posed
        driven meshes (world cm) and, as asked in ``flows``:
        ``flow_mesh`` (B, 2, s, s): on M_d, the backward flow (normalized units,
        :mod:`talkinghead.models.motion_vae`) from each driven surface point to the same point of the
        reference mesh — the mesh correspondence, averaged over the covered part of each pixel; 0 off the
        face; and ``flow_prior`` (B, 2, s, s): that correspondence extended smoothly off the face
        (:func:`~talkinghead.render.flow_extension.extend_flow`, σ 6 px, reach 32 px at 256²), the
        mesh-guided warp of the 3-D prior. s = ``motion_size``. The per-pair reference outputs of a
        single reference (R = 1) are expanded views of one rendering.
        """
        unknown = set(flows) - set(FLOWS)
        if unknown:
            raise ValueError(f"flows must be among {FLOWS}, got {sorted(unknown)}")
        refs, batch, size = alpha.shape[0], driven["beta"].shape[0], self.render_size
        if pairs is None and refs != batch:
            raise ValueError(f"without pairs there must be one reference per driven face, got {refs} and {batch}")

        def per_pair(x: torch.Tensor) -> torch.Tensor:
            """Reference rows (R, …) → rows of the B pairs."""
            if pairs is None:
                return x
            if refs == 1:
                return x.expand(batch, *x.shape[1:])
            return x.index_select(0, pairs.to(x.device))

        ref = rendered if rendered is not None else self.render_reference(alpha, reference, outer)
        rigid = pose_to_matrix(driven["pose"])
        driven_vertices = apply_rigid(self.unposed(per_pair(alpha), driven), *rigid)
        renderer = self._renderer(alpha.device)
        project = renderer.camera.project
        screen = project(driven_vertices)
        raster = renderer.rasterizer.rasterize(screen, renderer.triangles, (size, size))
        # Per vertex: NCC colour (Eq. 9) and, for the flows, the vertex' normalized position on its reference
        # mesh's projection; interpolated over the raster, the latter is the mesh correspondence.
        attributes = renderer.colors.expand(batch, -1, -1)
        if flows:
            attributes = torch.cat((attributes, per_pair(2.0 * ref.screen / size - 1.0)), dim=-1)
        interpolated = renderer.rasterizer.interpolate(attributes, raster, renderer.triangles)
        pair_labels = per_pair(ref.labels)
        moved = apply_rigid(per_pair(ref.shape), *rigid)
        theta = head_motion_theta(per_pair(ref.screen), project(moved)[..., :2], size)
        grid = F.affine_grid(theta, [batch, 1, size, size], align_corners=False)
        head = F.grid_sample(pair_labels[:, 1:2], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        rest = pair_labels[:, ::2] * (1.0 - head) / pair_labels[:, ::2].sum(1, keepdim=True).clamp_min(1e-6)
        driven_labels = torch.cat((rest[:, :1], head, rest[:, 1:]), dim=1)
        pt = compose_projection_texture(interpolated[:, :3], raster.mask, colorize(driven_labels))
        pool = size // self.motion_size
        pt_driven, mask_driven = F.avg_pool2d(pt, pool), F.avg_pool2d(raster.mask, pool)
        out = {
            "pt_reference": per_pair(ref.pt),
            "pt_driven": pt_driven,
            "lip_reference": per_pair(ref.heatmaps),
            "lip_driven": self._lip_heatmaps(driven_vertices),
            "mask_driven": mask_driven,
            "vertices_driven": driven_vertices,
        }
        if flows:
            centres = identity_grid(size, size, alpha.device, alpha.dtype).permute(0, 3, 1, 2)
            flow_mesh = (interpolated[:, 3:] - centres) * raster.mask
            if "flow_mesh" in flows:
                out["flow_mesh"] = F.avg_pool2d(flow_mesh, pool) / mask_driven.clamp_min(1e-6)
            if "flow_prior" in flows:
                scale = size / CROP_SIZE
                flow_prior = extend_flow(flow_mesh, raster.mask, PRIOR_SMOOTHING * scale, PRIOR_REACH * scale)
                out["flow_prior"] = F.avg_pool2d(flow_prior, pool)
        return out
