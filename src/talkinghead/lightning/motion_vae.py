"""``MotionVAEGeneratorModule``: trains VividTalk's mesh-to-video stage (§3.3, Fig. 5, §3.4).

The inference network is :class:`~talkinghead.models.mesh_to_video.MeshToVideo` (input renderer, outer-region
parser, motion-VAE, frame generator; ``self.model``); the objective, with the discriminator and the perceptual
network it needs, is :class:`~talkinghead.models.losses.MeshToVideoLoss` (``self.criterion``), which also
documents the departures from the paper's losses (the mesh-flow term). Per (reference, driven) frame pair of one
clip the module renders the motion-VAE's inputs on the training device, in :meth:`on_after_batch_transfer`.

Training is adversarial with manual optimization (generator = motion-VAE + frame generator, and the multi-scale
discriminator, each with its own Adam, ``toggle_optimizer``); the discriminator and the GAN and feature-matching
terms start after ``discriminator_start`` generator steps.

Under DDP each network's gradients are averaged over the ranks in its own step, as with one DDP wrapper per
network: the generator's backward pass has no gradient for the discriminator (frozen by ``toggle_optimizer``;
unused altogether before ``discriminator_start``) and the discriminator's none for the generator (its fake frames
are detached), which one DDP reducer over both cannot handle without ``find_unused_parameters``. So the
discriminator is kept out of Lightning's DDP wrapper (DDP's ``_set_params_and_buffers_to_ignore_for_model``): the
reducer averages the generator's gradients in the generator step; the discriminator step runs without the reducer
(``toggle_model(sync_grad=False)``) and averages the discriminator's gradients itself in one all-reduce; and the
discriminator's weights are broadcast from rank 0 when fitting starts (DDP's start-up broadcast skips them).

The perceptual network is built when fitting starts and is
kept out of checkpoints, so loading a checkpoint for inference needs neither its weights nor the corpus.

Metrics (``val/``, ``test/``): ``psnr`` (dB) and ``ssim`` per frame (:mod:`talkinghead.metrics.image`), ``l1``,
``mouth_landmark_distance`` — mean distance (pixels of the 256² frame) between the 40 MediaPipe FaceMesh lip
landmarks detected on the generated and on the real frame — and ``mouth_detection_rate``, the fraction of
pairs where both detections succeeded.
"""

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors
from torch.nn.parallel import DistributedDataParallel
from torchmetrics import MeanMetric
from torchvision.utils import make_grid

from talkinghead.conventions import CROP_SIZE, FRAME_SAMPLES
from talkinghead.data.shards import iter_clips
from talkinghead.image_tensors import to_uint8
from talkinghead.lightning.media import Image, Video
from talkinghead.lightning.stage import StageModule, adamw, warmup
from talkinghead.metrics.image import psnr, ssim
from talkinghead.metrics.landmarks import frame_mouth_landmark_distance
from talkinghead.models.losses import MeshToVideoLoss
from talkinghead.models.mesh_to_video import FACE_KEYS, MeshToVideo

IMAGE_METRICS = ("psnr", "ssim", "l1")
MOUTH_METRICS = ("mouth_landmark_distance", "mouth_detection_rate")
PERCEPTUAL_PREFIX = "criterion.perceptual."
CLIP_FRAMES = 50


def _world_size() -> int:
    """Ranks of the default process group (1 without torch.distributed)."""
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    return torch.distributed.get_world_size() if distributed else 1


def _face(batch: dict, role: str) -> dict[str, torch.Tensor]:
    return {key: batch[f"{role}_{key}"] for key in FACE_KEYS}


def distinct_references(batch: dict) -> tuple[list[int], torch.Tensor | None]:
    """The distinct references of a stage-2 batch: ``(firsts, pairs)``, the index of each one's first pair and,
    per pair, the number of its reference (B,); ``pairs`` is None when all B references differ. Two pairs share
    a reference when their clip id and reference frame index match and so do their reference frames and faces
    (validation pairs a clip's driven frames with its frame 0)."""
    count = batch["reference_frame"].shape[0]
    if "clip_id" not in batch or "reference_index" not in batch:
        return list(range(count)), None
    tensors = [batch["reference_frame"], batch["alpha"], *_face(batch, "reference").values()]
    firsts: list[int] = []
    pairs: list[int] = []
    seen: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(batch["clip_id"], batch["reference_index"].tolist(), strict=True)):
        same = (r for r in seen.get(key, []) if all(torch.equal(t[firsts[r]], t[i]) for t in tensors))
        match = next(same, None)
        if match is None:
            match = len(firsts)
            firsts.append(i)
            seen.setdefault(key, []).append(match)
        pairs.append(match)
    if len(firsts) == count:
        return firsts, None
    return firsts, torch.tensor(pairs, device=batch["reference_frame"].device)


class MotionVAEGeneratorModule(StageModule):
    """Training wrapper of the mesh-to-video stage (module docstring).

    Args:
        face_model, image_size, render_size, motion_size, rasterizer, face_parser, heatmap_sigma, motion,
            generator, flow_prior, mouth_interior: the arguments of :class:`MeshToVideo`.
        discriminator, perceptual, perceptual_args, l1_weight, perceptual_weight, kl_weight, mesh_flow_weight,
            gan_weight, feature_matching_weight, gan_loss, mouth_weight: the arguments of :class:`MeshToVideoLoss`.
        discriminator_start: generator optimizer steps of the run (all ranks step together) before the
            discriminator and the GAN/feature-matching terms start; the count is the generator optimizer's own
            (Adam's step), so it is checkpointed with the optimizer and resuming keeps it.
        lr, discriminator_lr, betas, weight_decay: the two Adam(W) optimizers (``discriminator_lr`` defaults to ``lr``).
        warmup_steps: both learning rates ramp up linearly over the first ``warmup_steps`` steps of their optimizer.
        gradient_clip_val: clip each network's gradient norm to this before its step (None = no clipping; manual
            optimization cannot use the trainer's ``gradient_clip_val``).
        mouth_metric: run MediaPipe for ``mouth_landmark_distance`` in validation/test.
        num_samples: rows of the logged sample grid.

    Media: the sample grid (reference | PT_d | warped | occlusion | generated | ground truth) of the batch and a
    short video (generated | ground truth, with audio) of the first validation clip driven by its own
    ground-truth motion from its first frame.
    """

    MONITOR = ("val/psnr", "max")
    EVALUATION_ARGS = ("mouth_metric", "num_samples", "rasterizer")

    def __init__(
        self,
        face_model: str = "builtin",
        image_size: int = CROP_SIZE,
        render_size: int = CROP_SIZE,
        motion_size: int = 64,
        rasterizer: str = "auto",
        face_parser: str = "mediapipe",
        heatmap_sigma: float = 1.0,
        motion: dict[str, Any] | None = None,
        generator: dict[str, Any] | None = None,
        discriminator: dict[str, Any] | None = None,
        perceptual: str = "vgg19",
        perceptual_args: dict[str, Any] | None = None,
        l1_weight: float = 1.0,
        perceptual_weight: float = 1.0,
        kl_weight: float = 1e-4,
        mesh_flow_weight: float = 0.0,
        flow_prior: bool = False,
        mouth_interior: bool = False,
        gan_weight: float = 0.1,
        feature_matching_weight: float = 1.0,
        gan_loss: str = "lsgan",
        mouth_weight: float = 0.0,
        discriminator_start: int = 0,
        lr: float = 1e-4,
        discriminator_lr: float | None = None,
        betas: tuple[float, float] = (0.5, 0.999),
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        gradient_clip_val: float | None = None,
        mouth_metric: bool = True,
        num_samples: int = 4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.model = MeshToVideo(
            face_model,
            image_size,
            render_size,
            motion_size,
            rasterizer,
            face_parser,
            heatmap_sigma,
            motion,
            generator,
            flow_prior,
            mouth_interior,
        )
        self.criterion = MeshToVideoLoss(
            discriminator,
            perceptual,
            perceptual_args,
            l1_weight,
            perceptual_weight,
            kl_weight,
            mesh_flow_weight,
            gan_weight,
            feature_matching_weight,
            gan_loss,
            mouth_weight,
        )
        discriminator = [
            f"criterion.discriminator.{name}" for name, _ in self.criterion.discriminator.named_parameters()
        ]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(self, discriminator)  # module docstring
        names = IMAGE_METRICS + (MOUTH_METRICS if mouth_metric else ())
        self.metrics = self.split_metrics(lambda: {name: MeanMetric() for name in names})

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Render PT_ref, PT_d and the lip maps of a stage-2 batch on the training device; a reference shared
        by several pairs (:func:`distinct_references`) is parsed and rasterized once."""
        if "reference_frame" in batch and "pt_driven" not in batch:
            firsts, pairs = distinct_references(batch)

            def pick(x: torch.Tensor) -> torch.Tensor:
                return x if pairs is None else x[firsts]

            reference = {key: pick(value) for key, value in _face(batch, "reference").items()}
            batch.update(
                self.model.render_inputs(
                    pick(batch["reference_frame"]), pick(batch["alpha"]), reference, _face(batch, "driven"), None, pairs
                )
            )
        return batch

    def setup(self, stage: str) -> None:
        """Build the perceptual loss network when fitting (a missing VGG-19 file fails here, in one line)."""
        if stage == "fit":
            self.criterion.build_perceptual()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep the fixed perceptual network out of checkpoints."""
        state = checkpoint["state_dict"]
        for key in [key for key in state if key.startswith(PERCEPTUAL_PREFIX)]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Resuming a fit: restore the perceptual network's own (fixed) weights, absent from the checkpoint."""
        if self.criterion.perceptual is not None:
            own = self.criterion.perceptual.state_dict()
            checkpoint["state_dict"].update({PERCEPTUAL_PREFIX + key: value for key, value in own.items()})

    def generator_loss(
        self, batch: dict, use_gan: bool, real: list | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict]:
        """The generator's loss on a rendered batch (sampled latent) → ``(loss, {"train/…": …}, outputs)``;
        ``real``: the discriminator's outputs on the driven frames, if computed
        (:meth:`MeshToVideoLoss.generator_loss`)."""
        out = self.model(batch["reference_frame"], batch, sample=True)
        loss, logs = self.criterion.generator_loss(out, batch, use_gan, real)
        return loss, logs, out

    def training_step(self, batch: dict, batch_idx: int) -> None:
        """Generator step, then (after the warm-up) discriminator step, each with its own optimizer.

        The discriminator runs once on the real frames, before both steps and with its graph: the generator
        step takes the features as (detached) feature-matching targets, the discriminator step backpropagates
        its real term through them; the discriminator's weights do not change in between (the generator's
        optimizer holds none of them), so the values and gradients are those of a second forward pass. (Its
        activations are kept through the generator step.)
        """
        opt_g, opt_d = self.optimizers()
        use_gan = self.generator_steps() >= self.hparams.discriminator_start
        real = self.criterion.discriminator(batch["driven_frame"]) if use_gan else None
        self.toggle_optimizer(opt_g)
        loss, logs, out = self.generator_loss(batch, use_gan, real)
        self._step(opt_g, loss, 0)
        self.untoggle_optimizer(opt_g)
        if use_gan:
            with opt_d.toggle_model(sync_grad=False):  # no DDP reducer: the generator has no gradient here
                d_loss = self.criterion.discriminator_step_loss(batch["driven_frame"], out["frame"], real)
                opt_d.zero_grad(set_to_none=True)
                self.manual_backward(d_loss)
            self._average_gradients(self.criterion.discriminator)
            self._step(opt_d, None, 1)
            logs["train/discriminator"] = d_loss
        self.log_dict(
            {k: v.detach() for k, v in logs.items()}, prog_bar=True, batch_size=batch["driven_frame"].shape[0]
        )

    def generator_steps(self) -> int:
        """Optimizer steps the generator has taken in this run (Adam's step count of its first parameter)."""
        optimizer = self.optimizers()[0].optimizer
        state = optimizer.state.get(optimizer.param_groups[0]["params"][0], {})
        return int(state.get("step", 0))

    def on_fit_start(self) -> None:
        """Start every rank from rank 0's discriminator (it is outside DDP, which would broadcast it)."""
        super().on_fit_start()
        if _world_size() > 1:
            for tensor in (*self.criterion.discriminator.parameters(), *self.criterion.discriminator.buffers()):
                torch.distributed.broadcast(tensor.data, src=0)

    @staticmethod
    def _average_gradients(network: torch.nn.Module) -> None:
        """The mean of a network's gradients over the ranks, in one all-reduce (what DDP's reducer would do)."""
        world = _world_size()
        if world == 1:
            return
        params = list(network.parameters())
        for param in params:
            if param.grad is None:  # the all-reduce has the same size on every rank
                param.grad = torch.zeros_like(param)
        grads = [param.grad for param in params]
        flat = _flatten_dense_tensors(grads)
        torch.distributed.all_reduce(flat)
        flat.div_(world)
        for grad, averaged in zip(grads, _unflatten_dense_tensors(flat, grads), strict=True):
            grad.copy_(averaged)

    def _step(self, optimizer, loss: torch.Tensor | None, index: int) -> None:
        """Backward (unless done), optional gradient clipping, the optimizer step and its warm-up schedule's step."""
        if loss is not None:
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
        if self.hparams.gradient_clip_val:
            self.clip_gradients(optimizer, self.hparams.gradient_clip_val, gradient_clip_algorithm="norm")
        optimizer.step()
        if self.hparams.warmup_steps:
            self.lr_schedulers()[index].step()

    def configure_optimizers(self) -> list[torch.optim.Optimizer] | tuple[list, list]:
        hp = self.hparams
        generator = [*self.model.motion.parameters(), *self.model.generator.parameters()]
        optimizers = [
            adamw(generator, lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay),
            adamw(
                self.criterion.discriminator.parameters(),
                lr=hp.lr if hp.discriminator_lr is None else hp.discriminator_lr,
                betas=tuple(hp.betas),
                weight_decay=hp.weight_decay,
            ),
        ]
        if not hp.warmup_steps:
            return optimizers
        return optimizers, [warmup(optimizer, hp.warmup_steps) for optimizer in optimizers]

    def _evaluate(self, batch: dict, split: str) -> None:
        out = self.model(batch["reference_frame"], batch, sample=False)
        frame, target = out["frame"].clamp(0, 1), batch["driven_frame"]
        metrics = self.metrics[split]
        metrics["psnr"].update(psnr(frame, target))
        metrics["ssim"].update(ssim(frame, target))
        metrics["l1"].update((frame - target).abs().mean(dim=(1, 2, 3)))
        if self.hparams.mouth_metric:
            distances, detected = frame_mouth_landmark_distance(frame, target)
            metrics["mouth_detection_rate"].update(detected.float())
            metrics["mouth_landmark_distance"].update(distances[detected])

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

    def log_media(self, batch: dict, datamodule: object) -> list:
        out = self.model(batch["reference_frame"], batch, sample=False)
        items = [Image("samples", to_uint8(self.sample_grid(batch, out)))]
        root = getattr(datamodule, "root", None)
        clip = None if root is None else next(iter_clips(root, "val", ("audio", "frames", *FACE_KEYS, "alpha")), None)
        if clip is None:
            return items
        length = min(CLIP_FRAMES, clip.num_frames)
        frames = torch.from_numpy(clip.frames[:length]).permute(0, 3, 1, 2).float().div(255).to(self.device)
        motion = {key: torch.from_numpy(getattr(clip, key)[:length]).to(self.device) for key in FACE_KEYS}
        reference = {
            "alpha": torch.from_numpy(clip.alpha)[None].to(self.device),
            **{key: value[:1] for key, value in motion.items()},
        }
        generated = self.model.synthesize(frames[:1], reference, motion)["frame"]
        audio = clip.audio[: length * FRAME_SAMPLES]
        items.append(Video("clip_generated_vs_truth", to_uint8(torch.cat((generated, frames), dim=-1)), audio))
        return items
