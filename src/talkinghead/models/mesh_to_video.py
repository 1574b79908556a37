"""``MeshToVideo``: VividTalk's mesh-to-video stage at inference (§3.3, Fig. 5), one network for the pipeline.

Per (reference, driven) pair of faces it renders the motion-VAE's inputs from their morphable-model parameters
(:class:`~talkinghead.render.MotionInputRenderer`: NCC projection textures PT_ref, PT_d with the parsed outer
region of the reference image, Eq. 9–10, and the lip Gaussian maps); the dual-branch motion-VAE predicts a dense
flow and an occlusion map, and the frame generator warps the reference image and synthesizes the driven frame.

With ``flow_prior`` (a departure from the paper, for CPU-budget training) the motion-VAE predicts a *residual* on
top of the 3-D prior's own flow: the mesh correspondence extended smoothly off the face (the mesh-guided warp the
hybrid prior implies). The network then only corrects what the mesh cannot say — hair, ears, the torso, the mouth
interior, the mesh's fitting error — instead of discovering the whole correspondence from the NCC colours, which
needs far more steps than a few CPU minutes give. ``flow_prior=False`` is the paper.

With ``mouth_interior`` (a departure too) the frames get the mouth interior drawn the way the embedded corpus draws
it (:mod:`talkinghead.render.mouth_interior`: a cavity with a teeth band where the driven mouth opens wider than
the reference's), composited over the generator's output in training and inference alike. A generator trained for
a few CPU minutes warps the reference almost unchanged (its occlusion map stays near 1), so a closed-mouth
portrait would otherwise open only by stretching its lips; the paper's generator (``False``) learns the interior
from real video.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from torch import nn

from talkinghead.conventions import CROP_SIZE
from talkinghead.face import apply_pose, load_morphable_model
from talkinghead.face.camera import scaled_camera
from talkinghead.models.frame_generator import FrameGenerator
from talkinghead.models.motion_vae import DualBranchMotionVAE
from talkinghead.render.face_parser import make_face_parser
from talkinghead.render.motion_inputs import MotionInputRenderer, ReferenceRendering
from talkinghead.render.mouth_interior import MouthInterior, paint

FACE_KEYS = ("beta", "pose", "lip_offsets")


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX, as oneDNN reports) rather than
    emulating it: where it is emulated, :meth:`MeshToVideo.drive` with ``bf16`` is slower than float32."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@dataclass
class PreparedReference:
    """A reference image (1, 3, H, W), its parameters, parsed outer labels and input rendering, on the network's
    device: what :meth:`MeshToVideo.synthesize` needs of a portrait, made once by
    :meth:`MeshToVideo.prepare_reference`."""

    image: torch.Tensor
    reference: dict[str, torch.Tensor]
    outer: torch.Tensor
    rendered: ReferenceRendering


def _to(face: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device) for key, value in face.items()}


class MeshToVideo(nn.Module):
    """Input renderer + outer-region parser + motion-VAE + frame generator (module docstring).

    Args:
        face_model: ``"builtin"`` or the path of a FaceVerse ``.npy`` file (the corpus' morphable model).
        image_size: frame size (the crop camera, f = 500 px, d = 60 cm at 256², scaled with the size:
            :func:`~talkinghead.face.camera.scaled_camera`).
        render_size, motion_size: rasterization and motion-VAE resolutions (:class:`MotionInputRenderer`).
        rasterizer: ``auto`` | ``torch`` | ``nvdiffrast``.
        face_parser: ``"mediapipe"`` or the import path of a :class:`~talkinghead.render.FaceParser` subclass.
        heatmap_sigma: lip heatmap σ in ``motion_size`` pixels.
        motion, generator: keyword arguments of :class:`DualBranchMotionVAE` (e.g. ``lip_branch: false`` for the
            Fig. 8 ablation) and :class:`FrameGenerator`.
        flow_prior: predict a residual on the 3-D prior's flow (module docstring; False = the paper).
        mouth_interior: composite the drawn mouth interior over the frames (module docstring; False = the paper).
    """

    def __init__(
        self,
        face_model: str = "builtin",
        image_size: int = CROP_SIZE,
        render_size: int = CROP_SIZE,
        motion_size: int = 64,
        rasterizer: str = "auto",
        face_parser: str = "mediapipe",
        heatmap_sigma: float = 1.0,
        motion: dict | None = None,
        generator: dict | None = None,
        flow_prior: bool = False,
        mouth_interior: bool = False,
    ) -> None:
        super().__init__()
        face = load_morphable_model(face_model)
        camera = scaled_camera(image_size)
        self.inputs = MotionInputRenderer(face, camera, render_size, motion_size, rasterizer, heatmap_sigma)
        self.parser = make_face_parser(face_parser)
        self.motion = DualBranchMotionVAE(face.num_lip_vertices, **(motion or {}))
        self.generator = FrameGenerator(**(generator or {}))
        self.flow_prior = flow_prior
        self.interior = MouthInterior(face, camera, rasterizer) if mouth_interior else None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def parse_reference(self, reference_image: torch.Tensor, reference: dict[str, torch.Tensor]) -> torch.Tensor:
        """Outer-region labels (B, 3, H, W) of reference images (B, 3, H, W) in [0, 1] from the configured
        parser; ``reference`` holds ``alpha`` (B, K), ``beta``, ``pose``, ``lip_offsets`` of the images."""
        points = self.inputs.face_points(reference["alpha"].to(self.device), _to(reference, self.device))
        return self.parser.parse(reference_image.to(self.device), points)

    @torch.no_grad()
    def prepare_reference(
        self, reference_image: torch.Tensor, reference: dict[str, torch.Tensor], outer: torch.Tensor | None = None
    ) -> PreparedReference:
        """One reference image (1, 3, H, W) in [0, 1] and its parameters (:meth:`synthesize`) parsed and rendered
        once, for any number of :meth:`drive` calls; ``outer`` as in :meth:`synthesize`."""
        image = reference_image.to(self.device)
        reference = _to(reference, self.device)
        if outer is None:
            outer = self.parse_reference(image, reference)
        outer = outer.to(self.device)
        faces = {key: reference[key] for key in FACE_KEYS}
        rendered = self.inputs.render_reference(reference["alpha"], faces, outer)
        return PreparedReference(image, reference, outer, rendered)

    @torch.no_grad()
    def render_inputs(
        self,
        reference_image: torch.Tensor,
        alpha: torch.Tensor,
        reference: dict[str, torch.Tensor],
        driven: dict[str, torch.Tensor],
        outer: torch.Tensor | None = None,
        pairs: torch.Tensor | None = None,
        mesh_flow: bool = True,
        rendered: ReferenceRendering | None = None,
    ) -> dict[str, torch.Tensor]:
        """The motion-VAE inputs of B pairs (:meth:`MotionInputRenderer.forward`) from R distinct references:
        ``reference_image`` (R, 3, H, W), ``alpha`` and ``reference`` of R faces, ``driven`` of B faces and
        ``pairs`` (B,) the reference of each (None: R = B, pair i is reference i); parses the references when
        ``outer`` is None and renders them unless ``rendered`` is given. ``flow_mesh`` is rendered when
        ``mesh_flow`` (the training loss's), ``flow_prior`` when the network uses it, and with ``mouth_interior``
        the painted interior of the pairs: ``interior_colour``, ``interior_opacity``, ``interior_box``
        (:class:`~talkinghead.render.mouth_interior.MouthInterior`)."""
        if outer is None:
            outer = self.parse_reference(reference_image, {"alpha": alpha, **reference})
        flows = (("flow_mesh",) if mesh_flow else ()) + (("flow_prior",) if self.flow_prior else ())
        inputs = self.inputs(alpha, reference, driven, outer, pairs, flows, rendered)
        if self.interior is not None:
            index = torch.arange(driven["beta"].shape[0], device=alpha.device) if pairs is None else pairs
            shape = rendered.shape if rendered is not None else self.inputs.unposed(alpha, reference)
            source = apply_pose(shape, reference["pose"]).index_select(0, index)
            painted = self.interior(source, inputs["vertices_driven"], reference_image.index_select(0, index))
            inputs["interior_colour"], inputs["interior_opacity"], inputs["interior_box"] = painted
        return inputs

    def forward(self, reference_image: torch.Tensor, inputs: dict[str, torch.Tensor], sample: bool) -> dict:
        """Motion-VAE + generator on rendered inputs: ``frame``, ``warped``, ``occlusion`` (B, ·, H, W), ``flow``
        (B, 2, s, s), ``mu``, ``logvar``; ``sample`` draws the latent (training) instead of using its mean."""
        motion = self.motion(
            inputs["pt_reference"], inputs["pt_driven"], inputs["lip_reference"], inputs["lip_driven"], sample=sample
        )
        flow = motion.flow + inputs["flow_prior"] if self.flow_prior else motion.flow
        out = self.generator(reference_image, flow, motion.occlusion)
        if self.interior is not None:
            interior = (inputs[f"interior_{key}"] for key in ("colour", "opacity", "box"))
            out["frame"] = paint(out["frame"], *interior)
        out.update(flow=flow, mu=motion.mu, logvar=motion.logvar)
        return out

    @torch.no_grad()
    def synthesize(
        self,
        reference_image: torch.Tensor,
        reference: dict[str, torch.Tensor],
        driven: dict[str, torch.Tensor],
        outer: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Frames of one reference image (1, 3, H, W) in [0, 1] driven by B faces.

        ``reference``: ``alpha`` (1, K), ``beta`` (1, 52), ``pose`` (1, 6), ``lip_offsets`` (1, L, 3);
        ``driven``: ``beta`` (B, 52), ``pose`` (B, 6) absolute, in the corpus camera convention,
        ``lip_offsets`` (B, L, 3); ``outer``: :meth:`parse_reference`'s labels (computed when None).
        Returns ``frame``, ``pt_driven``, ``warped`` (B, 3, H, W) and ``occlusion`` (B, 1, H, W), using the
        VAE mean and eval-mode networks on the module's device. A portrait driven over many calls is
        prepared once instead: :meth:`prepare_reference`, then :meth:`drive`.
        """
        return self.drive(self.prepare_reference(reference_image, reference, outer), driven)

    @torch.no_grad()
    def drive(
        self, prepared: PreparedReference, driven: dict[str, torch.Tensor], bf16: bool = False
    ) -> dict[str, torch.Tensor]:
        """:meth:`synthesize` for a reference :meth:`prepare_reference` has parsed and rendered.

        ``bf16`` runs the motion-VAE and the generator under ``torch.autocast(bfloat16)`` on the module's device
        (the input rendering stays float32: its z-buffer and barycentric interpolation need the precision).
        Faster where the hardware computes in bfloat16 (CUDA, CPUs with :func:`native_bfloat16`); the frames
        differ from float32 by rounding (docs/PERFORMANCE.md measures it)."""
        count = driven["beta"].shape[0]
        was_training = self.training
        self.eval()
        try:
            inputs = self.render_inputs(
                prepared.image,
                prepared.reference["alpha"],
                {k: prepared.reference[k] for k in FACE_KEYS},
                _to(driven, self.device),
                prepared.outer,
                pairs=torch.zeros(count, dtype=torch.long, device=self.device),
                mesh_flow=False,
                rendered=prepared.rendered,
            )
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
                out = self(prepared.image.expand(count, *prepared.image.shape[1:]), inputs, sample=False)
        finally:
            self.train(was_training)
        size = prepared.image.shape[-2:]
        pt_driven = F.interpolate(inputs["pt_driven"], size=size, mode="bilinear", align_corners=False)
        return {
            "frame": out["frame"].float().clamp(0, 1),
            "pt_driven": pt_driven,
            "warped": out["warped"].float(),
            "occlusion": out["occlusion"].float(),
        }
