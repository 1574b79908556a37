"""``MotionVAEGeneratorModule``: trains VividTalk's mesh-to-video stage (§3.3, Fig. 5, §3.4).

Per (reference, driven) frame pair of one clip the module renders, on the training device and in
:meth:`on_after_batch_transfer`, the motion-VAE's inputs from the pair's morphable-model parameters
(:class:`~talkinghead.render.MotionInputRenderer`: NCC projection textures PT_ref, PT_d with the parsed outer
region of the reference image, Eq. 9–10, and the lip Gaussian maps). The motion-VAE predicts a dense flow and
an occlusion map, the generator warps the reference frame and synthesizes the driven frame. Inference
(:meth:`synthesize`) runs the same code path with the VAE's mean.

Training is adversarial with manual optimization (generator = motion-VAE + frame generator, and the
multi-scale discriminator, each with its own Adam, ``toggle_optimizer``); the discriminator and the GAN
and feature-matching terms start after ``discriminator_start`` batches. Generator loss::

    λ_l1‖x̂ − x‖₁ + λ_perc L_perc(x̂, x) + λ_kl KL(q(z|PT_ref, PT_d) ‖ N(0, I)) + λ_gan L_gan + λ_fm L_fm

with L_perc the VGG-19 pyramid of the paper or its weight-free stand-in (:mod:`talkinghead.models.perceptual`),
plus, where ``mesh_flow_weight > 0``, a term the paper does not have: the L1 distance (in motion-resolution
pixels, averaged over the driven inner face M_d) between the predicted flow and the flow the two meshes
define there — each driven surface point sampled at the same point of the reference mesh
(``flow_mesh`` of :class:`~talkinghead.render.MotionInputRenderer`). The photometric losses alone give the
flow a signal only at the portrait's texture edges and take far longer to align it than the tiny config's
few CPU minutes; the network still has to infer the flow from PT_ref, PT_d and the lip maps (the
correspondence is not an input) and to extend it to the hair, ears and torso, where only the photometric
losses speak.
With ``flow_prior: true`` (another departure, for CPU-budget training) the motion-VAE predicts a *residual*
on top of the 3-D prior's own flow: the mesh correspondence extended smoothly off the face (``flow_prior``
of :class:`~talkinghead.render.MotionInputRenderer`, the mesh-guided warp the hybrid prior implies). The
network then only corrects what the mesh cannot say — hair, ears, the torso, the mouth interior, the mesh's
fitting error — instead of discovering the whole correspondence from the NCC colours, which needs far more
steps than a few CPU minutes give. The paper config keeps ``flow_prior: false``.
The perceptual network is built when fitting starts and is kept out of checkpoints, so loading a checkpoint
for inference needs neither its weights nor the corpus.

Metrics (``val/``, ``test/``): ``psnr`` (dB) and ``ssim`` per frame (torchmetrics), ``l1``,
``mouth_landmark_distance`` — mean distance (pixels of the 256² frame) between the 40 MediaPipe FaceMesh lip
landmarks detected on the generated and on the real frame — and ``mouth_detection_rate``, the fraction of
pairs where both detections succeeded. :meth:`sample_grid` (reference | PT_d | warped | occlusion | generated
| ground truth) is what :class:`~talkinghead.lightning.media.MediaLogger` logs for the first validation/test
batch.
"""


import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from torchmetrics import MeanMetric
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
from torchvision.utils import make_grid

from talkinghead.face import PerspectiveCamera, load_morphable_model
from talkinghead.face.regions import lip_ids
from talkinghead.lightning.stage import StageModule
from talkinghead.metrics.landmarks import mouth_landmark_distance
from talkinghead.models.discriminator import (
    MultiScaleDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from talkinghead.models.frame_generator import FrameGenerator
from talkinghead.models.motion_vae import DualBranchMotionVAE, kl_divergence
from talkinghead.models.perceptual import build_perceptual_loss
from talkinghead.render.face_parser import make_face_parser
from talkinghead.render.motion_inputs import MotionInputRenderer

FACE_KEYS = ("beta", "pose", "lip_offsets")
METRICS = ("psnr", "ssim", "l1", "mouth_landmark_distance", "mouth_detection_rate")
PERCEPTUAL_PREFIX = "perceptual."


def frame_mouth_landmark_distance(
    generated: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames (B, 3, H, W) in [0, 1] → (mouth landmark distance (B,) in pixels, detected (B,) bool).

    MediaPipe FaceMesh runs on both frames; the distance is :func:`talkinghead.metrics.landmarks.
    mouth_landmark_distance` over the 40 lip landmarks (the built-in model's lip vertices are those FaceMesh
    points), uncentred: the frames are aligned crops. Where either frame has no face it is NaN and
    ``detected`` False.
    """
    from talkinghead.data.portrait import NoFaceError, detect_face_landmarks

    lips = lip_ids()
    pixels = [
        (x.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        for x in (generated, target)
    ]
    distances = []
    for fake, real in zip(*pixels, strict=True):
        try:
            a, b = (torch.from_numpy(detect_face_landmarks(x)[lips, :2])[None] for x in (fake, real))
        except NoFaceError:
            distances.append(float("nan"))
            continue
        distances.append(float(mouth_landmark_distance(a, b, centre=False)))
    distances = torch.tensor(distances)
    return distances, ~distances.isnan()


def _face(batch: dict, role: str) -> dict[str, torch.Tensor]:
    return {key: batch[f"{role}_{key}"] for key in FACE_KEYS}


class MotionVAEGeneratorModule(StageModule):
    """Training wrapper and inference entry point of the mesh-to-video stage (module docstring).

    Args:
        face_model: ``"builtin"`` or the path of a FaceVerse ``.npy`` file (the corpus' morphable model).
        image_size: frame size (the crop camera: f = 500 px, d = 60 cm at 256², scaled with the size).
        render_size, motion_size: rasterization and motion-VAE resolutions (:class:`MotionInputRenderer`).
        rasterizer: ``auto`` | ``torch`` | ``nvdiffrast``.
        face_parser: ``"mediapipe"`` or the import path of a :class:`~talkinghead.render.FaceParser` subclass.
        heatmap_sigma: lip heatmap σ in ``motion_size`` pixels.
        motion, generator, discriminator: keyword arguments of :class:`DualBranchMotionVAE` (e.g.
            ``lip_branch: false`` for the Fig. 8 ablation), :class:`FrameGenerator`, :class:`MultiScaleDiscriminator`.
        perceptual, perceptual_args: ``"vgg19"`` (the paper's; ``perceptual_args.weights`` = local weights file)
            or ``"gradients"`` (weight-free) and its keyword arguments.
        l1_weight, perceptual_weight, kl_weight, gan_weight, feature_matching_weight: loss weights.
        mesh_flow_weight: weight of the mesh-correspondence flow term (module docstring; 0 = the paper's losses).
        flow_prior: predict a residual on the 3-D prior's flow (module docstring; False = the paper).
        gan_loss: ``"lsgan"`` or ``"hinge"``.
        discriminator_start: training batches before the discriminator and the GAN/feature-matching terms start.
        lr, discriminator_lr, betas, weight_decay: the two Adam(W) optimizers (``discriminator_lr`` defaults to ``lr``).
        mouth_metric: run MediaPipe for ``mouth_landmark_distance`` in validation/test.
        num_samples: rows of the logged sample grid.
    """

    def __init__(
        self,
        face_model: str = "builtin",
        image_size: int = 256,
        render_size: int = 256,
        motion_size: int = 64,
        rasterizer: str = "auto",
        face_parser: str = "mediapipe",
        heatmap_sigma: float = 1.0,
        motion: dict | None = None,
        generator: dict | None = None,
        discriminator: dict | None = None,
        perceptual: str = "vgg19",
        perceptual_args: dict | None = None,
        l1_weight: float = 1.0,
        perceptual_weight: float = 1.0,
        kl_weight: float = 1e-4,
        mesh_flow_weight: float = 0.0,
        flow_prior: bool = False,
        gan_weight: float = 0.1,
        feature_matching_weight: float = 1.0,
        gan_loss: str = "lsgan",
        discriminator_start: int = 0,
        lr: float = 1e-4,
        discriminator_lr: float | None = None,
        betas: tuple[float, float] = (0.5, 0.999),
        weight_decay: float = 0.0,
        mouth_metric: bool = True,
        num_samples: int = 4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        face = load_morphable_model(face_model)
        camera = PerspectiveCamera(image_size, 500.0 * image_size / 256, 60.0)
        self.inputs = MotionInputRenderer(face, camera, render_size, motion_size, rasterizer, heatmap_sigma)
        self.parser = make_face_parser(face_parser)
        self.motion = DualBranchMotionVAE(face.num_lip_vertices, **(motion or {}))
        self.generator = FrameGenerator(**(generator or {}))
        self.discriminator = MultiScaleDiscriminator(**(discriminator or {}))
        self.perceptual: torch.nn.Module | None = None
        self.metrics = torch.nn.ModuleDict(
            {split: torch.nn.ModuleDict({name: MeanMetric() for name in METRICS}) for split in ("val", "test")}
        )

    @torch.no_grad()
    def parse_reference(self, reference_image: torch.Tensor, reference: dict[str, torch.Tensor]) -> torch.Tensor:
        """Outer-region labels (B, 3, H, W) of reference images (B, 3, H, W) in [0, 1] from the configured
        parser; ``reference`` holds ``alpha`` (B, K), ``beta``, ``pose``, ``lip_offsets`` of the images."""
        points = self.inputs.face_points(reference["alpha"].to(self.device), _to(reference, self.device))
        return self.parser.parse(reference_image.to(self.device), points)

    @torch.no_grad()
    def render_inputs(
        self,
        reference_image: torch.Tensor,
        alpha: torch.Tensor,
        reference: dict[str, torch.Tensor],
        driven: dict[str, torch.Tensor],
        outer: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The motion-VAE inputs of B pairs (:meth:`MotionInputRenderer.forward`); parses the references
        when ``outer`` is None. Used by training (:meth:`on_after_batch_transfer`) and :meth:`synthesize`."""
        if outer is None:
            outer = self.parse_reference(reference_image, {"alpha": alpha, **reference})
        return self.inputs(alpha, reference, driven, outer)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Render PT_ref, PT_d and the lip maps of a stage-2 batch on the training device."""
        if "reference_frame" in batch and "pt_driven" not in batch:
            batch.update(
                self.render_inputs(
                    batch["reference_frame"], batch["alpha"], _face(batch, "reference"), _face(batch, "driven")
                )
            )
        return batch

    def generate(self, reference_image: torch.Tensor, inputs: dict[str, torch.Tensor], sample: bool) -> dict:
        """Motion-VAE + generator: ``frame``, ``warped``, ``occlusion`` (B, ·, H, W), ``flow`` (B, 2, s, s),
        ``mu``, ``logvar``; ``sample`` draws the latent (training) instead of using its mean."""
        motion = self.motion(
            inputs["pt_reference"], inputs["pt_driven"], inputs["lip_reference"], inputs["lip_driven"], sample=sample
        )
        flow = motion.flow + inputs["flow_prior"] if self.hparams.flow_prior else motion.flow
        out = self.generator(reference_image, flow, motion.occlusion)
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
        VAE mean and eval-mode networks on the module's device.
        """
        count = driven["beta"].shape[0]
        image = reference_image.to(self.device)
        reference = _to(reference, self.device)
        if outer is None:
            outer = self.parse_reference(image, reference)

        def expand(x: torch.Tensor) -> torch.Tensor:
            return x.to(self.device).expand(count, *x.shape[1:])

        was_training = self.training
        self.eval()
        try:
            inputs = self.render_inputs(
                image,
                expand(reference["alpha"]),
                {k: expand(reference[k]) for k in FACE_KEYS},
                _to(driven, self.device),
                expand(outer),
            )
            out = self.generate(expand(image), inputs, sample=False)
        finally:
            self.train(was_training)
        pt_driven = F.interpolate(inputs["pt_driven"], size=image.shape[-2:], mode="bilinear", align_corners=False)
        return {
            "frame": out["frame"].clamp(0, 1),
            "pt_driven": pt_driven,
            "warped": out["warped"],
            "occlusion": out["occlusion"],
        }

    def setup(self, stage: str) -> None:
        """Build the perceptual loss network when fitting (a missing VGG-19 file fails here, in one line)."""
        if stage == "fit" and self.perceptual is None:
            self.perceptual = build_perceptual_loss(self.hparams.perceptual, **(self.hparams.perceptual_args or {}))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep the fixed perceptual network out of checkpoints."""
        state = checkpoint["state_dict"]
        for key in [key for key in state if key.startswith(PERCEPTUAL_PREFIX)]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Resuming a fit: restore the perceptual network's own (fixed) weights, absent from the checkpoint."""
        if self.perceptual is not None:
            own = self.perceptual.state_dict()
            checkpoint["state_dict"].update({PERCEPTUAL_PREFIX + key: value for key, value in own.items()})

    def generator_loss(self, batch: dict, use_gan: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict]:
        """The generator's loss (module docstring) on a rendered batch → ``(loss, {"train/…": …}, outputs)``."""
        if self.perceptual is None:
            raise RuntimeError("call setup('fit') before computing the training loss (builds the perceptual loss)")
        hp = self.hparams
        out = self.generate(batch["reference_frame"], batch, sample=True)
        frame, target = out["frame"], batch["driven_frame"]
        l1 = (frame - target).abs().mean()
        perceptual = self.perceptual(frame, target)
        kl = kl_divergence(out["mu"], out["logvar"])
        mask = batch["mask_driven"]
        pixels = (out["flow"] - batch["flow_mesh"]).abs().sum(1, keepdim=True) * (out["flow"].shape[-1] / 2)
        mesh_flow = (pixels * mask).sum() / mask.sum().clamp_min(1.0)
        loss = hp.l1_weight * l1 + hp.perceptual_weight * perceptual + hp.kl_weight * kl
        loss = loss + hp.mesh_flow_weight * mesh_flow
        logs = {"train/l1": l1, "train/perceptual": perceptual, "train/kl": kl, "train/mesh_flow_px": mesh_flow}
        if use_gan:
            fake = self.discriminator(frame)
            with torch.no_grad():
                real = self.discriminator(target)
            gan, matching = generator_adversarial_loss(fake, hp.gan_loss), feature_matching_loss(real, fake)
            loss = loss + hp.gan_weight * gan + hp.feature_matching_weight * matching
            logs.update({"train/gan": gan, "train/feature_matching": matching})
        logs["train/loss"] = loss
        return loss, logs, out

    def training_step(self, batch: dict, batch_idx: int) -> None:
        """Generator step, then (after the warm-up) discriminator step, each with its own optimizer."""
        opt_g, opt_d = self.optimizers()
        use_gan = self.trainer.fit_loop.total_batch_idx >= self.hparams.discriminator_start
        self.toggle_optimizer(opt_g)
        loss, logs, out = self.generator_loss(batch, use_gan)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        if use_gan:
            self.toggle_optimizer(opt_d)
            d_loss = discriminator_loss(
                self.discriminator(batch["driven_frame"]),
                self.discriminator(out["frame"].detach()),
                self.hparams.gan_loss,
            )
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            opt_d.step()
            self.untoggle_optimizer(opt_d)
            logs["train/discriminator"] = d_loss
        self.log_dict(
            {k: v.detach() for k, v in logs.items()}, prog_bar=True, batch_size=batch["driven_frame"].shape[0]
        )

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        hp = self.hparams
        generator = [*self.motion.parameters(), *self.generator.parameters()]
        return [
            torch.optim.AdamW(generator, lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay),
            torch.optim.AdamW(
                self.discriminator.parameters(),
                lr=hp.discriminator_lr or hp.lr,
                betas=tuple(hp.betas),
                weight_decay=hp.weight_decay,
            ),
        ]

    def _evaluate(self, batch: dict, split: str) -> None:
        out = self.generate(batch["reference_frame"], batch, sample=False)
        frame, target = out["frame"].clamp(0, 1), batch["driven_frame"]
        metrics = self.metrics[split]
        metrics["psnr"].update(peak_signal_noise_ratio(frame, target, data_range=1.0, reduction="none", dim=(1, 2, 3)))
        metrics["ssim"].update(structural_similarity_index_measure(frame, target, data_range=1.0, reduction="none"))
        metrics["l1"].update((frame - target).abs().mean(dim=(1, 2, 3)))
        if self.hparams.mouth_metric:
            distances, detected = frame_mouth_landmark_distance(frame, target)
            metrics["mouth_detection_rate"].update(detected.float())
            if detected.any():
                metrics["mouth_landmark_distance"].update(distances[detected])

    def _log_epoch(self, split: str) -> None:
        values = {
            f"{split}/{name}": metric.compute() for name, metric in self.metrics[split].items() if metric.update_called
        }
        self.log_dict(values, prog_bar=split == "val")
        for metric in self.metrics[split].values():
            metric.reset()

    def sample_grid(self, batch: dict, out: dict) -> torch.Tensor:
        """(3, h, w) grid, one row per pair: reference | PT_d | warped | occlusion | generated | ground truth."""
        count = min(self.hparams.num_samples, batch["driven_frame"].shape[0])
        size = batch["driven_frame"].shape[-2:]
        pt = F.interpolate(batch["pt_driven"][:count], size=size, mode="bilinear", align_corners=False)
        columns = (
            batch["reference_frame"][:count],
            pt,
            out["warped"][:count],
            out["occlusion"][:count].expand(-1, 3, -1, -1),
            out["frame"][:count],
            batch["driven_frame"][:count],
        )
        tiles = torch.stack(columns, dim=1).flatten(0, 1).clamp(0, 1).float().cpu()
        return make_grid(tiles, nrow=len(columns), padding=2, pad_value=1.0)


def _to(face: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device) for key, value in face.items()}
