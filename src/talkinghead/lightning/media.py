"""``MediaLogger``: the one callback that logs every stage's pictures and videos (rank 0 only).

At the end of a validation run (not the sanity check; every ``every_n_validations``-th one) and of a test
run it takes the first batch it saw and writes, by module:

* ``FacialMotionModule`` — NCC renders (Eq. 9) of the predicted | ground-truth meshes (unposed, Eq. 4) of the
  batch's first window: a strip of five frames (PNG) and the whole window as an mp4 with its audio;
* ``PoseMapperModule`` — the mean face posed by the sampled (seed 0) | ground-truth head poses, PNG strip
  and mp4 with audio;
* ``PoseVQVAEModule`` — the codebook usage histogram of the batch's codes (PNG bar chart and, on W&B, a
  ``wandb.Histogram``);
* ``MotionVAEGeneratorModule`` — the sample grid (reference | PT_d | warped | occlusion | generated | ground
  truth) of the batch and a short video (generated | ground truth, with audio) of the first validation
  clip driven by its own ground-truth motion from its first frame.

Files go to ``<log_dir>/media/<split>-step<N>-<name>.{png,mp4}`` (split ``val`` or ``test``; ``log_dir`` =
the logger's, else the trainer's root); a :class:`~lightning.pytorch.loggers.WandbLogger` also receives them as
``wandb.Image`` / ``wandb.Video`` / ``wandb.Histogram`` under ``media/<name>``.
"""

from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from torchvision.utils import make_grid

from talkinghead.audio.io import FPS, SAMPLE_RATE
from talkinghead.data.shards import iter_clips
from talkinghead.face.builtin import builtin_morphable_model
from talkinghead.face.camera import PerspectiveCamera
from talkinghead.face.pose import apply_pose
from talkinghead.media import VideoWriter
from talkinghead.render import NCCRenderer, make_rasterizer

STRIP_FRAMES = 5
CLIP_FRAMES = 50


def _uint8(images: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) in [0, 1] → (..., H, W, 3) uint8."""
    return (images.detach().float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).movedim(-3, -1).cpu().numpy()


class MediaLogger(Callback):
    """See the module docstring. ``every_n_validations``: log at every n-th validation run."""

    def __init__(self, every_n_validations: int = 1) -> None:
        self.every_n_validations = every_n_validations
        self._batch: dict | None = None
        self._validations = 0
        self._renderer: NCCRenderer | None = None

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if batch_idx == 0 and dataloader_idx == 0 and not trainer.sanity_checking:
            self._batch = batch

    on_test_batch_end = on_validation_batch_end

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self._batch is None:
            return
        self._validations += 1
        if (self._validations - 1) % self.every_n_validations == 0:
            self._log(trainer, pl_module, "val")
        self._batch = None

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._batch is not None:
            self._log(trainer, pl_module, "test")
        self._batch = None

    def _log(self, trainer: Trainer, pl_module: LightningModule, split: str) -> None:
        make = {
            "FacialMotionModule": self._facial_motion,
            "PoseMapperModule": self._pose_mapper,
            "PoseVQVAEModule": self._codebook,
            "MotionVAEGeneratorModule": self._motion_vae,
        }.get(type(pl_module).__name__)
        if make is None or not trainer.is_global_zero:
            return
        folder = Path(trainer.log_dir or trainer.default_root_dir) / "media"
        folder.mkdir(parents=True, exist_ok=True)
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                make(trainer, pl_module, self._batch, folder, f"{split}-step{trainer.global_step:07d}")
        finally:
            pl_module.train(was_training)

    def _wandb(self, trainer: Trainer) -> WandbLogger | None:
        return next((logger for logger in trainer.loggers if isinstance(logger, WandbLogger)), None)

    def _image(self, trainer: Trainer, folder: Path, prefix: str, key: str, image: np.ndarray) -> Path:
        from PIL import Image

        path = folder / f"{prefix}-{key}.png"
        Image.fromarray(image).save(path)
        logger = self._wandb(trainer)
        if logger is not None:
            logger.log_image(key=f"media/{key}", images=[str(path)], step=trainer.global_step)
        return path

    def _video(self, trainer: Trainer, folder: Path, prefix: str, key: str, frames: np.ndarray,
               audio: np.ndarray | None) -> Path:
        path = folder / f"{prefix}-{key}.mp4"
        with VideoWriter(path, FPS, audio, SAMPLE_RATE) as writer:
            writer.write(frames)
        logger = self._wandb(trainer)
        if logger is not None:
            import wandb

            logger.experiment.log({f"media/{key}": wandb.Video(str(path), format="mp4"),
                                   "trainer/global_step": trainer.global_step})
        return path

    def _ncc(self, pl_module: LightningModule, vertices: torch.Tensor, model) -> torch.Tensor:
        """NCC renders (N, 3, 256, 256) of world-space meshes (N, V, 3)."""
        if self._renderer is None:
            self._renderer = NCCRenderer(model, PerspectiveCamera(), make_rasterizer("auto", pl_module.device))
        self._renderer.to(pl_module.device)
        images, _ = self._renderer(vertices.to(pl_module.device))
        return images

    def _side_by_side(self, trainer, folder, prefix, key, left, right, audio) -> None:
        pair = torch.cat((left, right), dim=-1)  # (T, 3, H, 2W)
        picks = torch.linspace(0, len(pair) - 1, STRIP_FRAMES).round().long()
        strip = make_grid(pair[picks].float().cpu(), nrow=1, padding=2, pad_value=1.0)
        self._image(trainer, folder, prefix, key, _uint8(strip))
        self._video(trainer, folder, prefix, key, _uint8(pair), audio)

    @staticmethod
    def _first_audio(batch: dict) -> np.ndarray | None:
        audio = batch.get("audio")
        return None if audio is None else audio[0].float().cpu().numpy()

    def _facial_motion(self, trainer, module, batch, folder, prefix) -> None:
        length = batch["beta"].shape[1]
        alpha = batch["alpha"][:1]
        predicted = module(batch["audio"][:1], alpha, length)
        meshes = module.meshes(alpha, torch.cat((predicted["beta"], batch["beta"][:1])),
                               torch.cat((predicted["lip_offsets"], batch["lip_offsets"][:1])))
        renders = self._ncc(module, meshes.flatten(0, 1), module.face).unflatten(0, (2, length))
        self._side_by_side(trainer, folder, prefix, "mesh_predicted_vs_truth", renders[0], renders[1],
                           self._first_audio(batch))

    def _pose_mapper(self, trainer, module, batch, folder, prefix) -> None:
        pose = batch["pose"][:1]
        generator = torch.Generator(device=pose.device).manual_seed(0)
        sampled = module(batch["audio"][:1], batch["alpha"][:1], pose[:, 0], pose.shape[1],
                         module.hparams.sample_temperature, module.hparams.sample_top_k, generator)
        model = builtin_morphable_model().to(pose.device)
        face = model.vertices(torch.zeros(1, model.num_identity, device=pose.device),
                              torch.zeros(1, model.num_expression, device=pose.device))
        posed = apply_pose(face.expand(2 * pose.shape[1], -1, -1), torch.cat((sampled[0], pose[0])))
        renders = self._ncc(module, posed, model).unflatten(0, (2, pose.shape[1]))
        self._side_by_side(trainer, folder, prefix, "head_pose_sampled_vs_truth", renders[0], renders[1],
                           self._first_audio(batch))

    def _codebook(self, trainer, module, batch, folder, prefix) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        indices = module(batch["pose"])["indices"]
        num_codes = module.net.quantizer.num_codes
        counts = torch.bincount(indices.flatten().cpu(), minlength=num_codes).numpy()
        figure, axis = plt.subplots(figsize=(6, 2.5), dpi=100)
        axis.bar(np.arange(num_codes), counts, width=1.0)
        axis.set(xlabel="code", ylabel="uses", title=f"codebook usage: {int((counts > 0).sum())}/{num_codes} codes")
        figure.tight_layout()
        figure.canvas.draw()
        image = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
        plt.close(figure)
        self._image(trainer, folder, prefix, "codebook_usage", image)
        np.savetxt(folder / f"{prefix}-codebook_usage.csv", counts[None], fmt="%d", delimiter=",")
        logger = self._wandb(trainer)
        if logger is not None:
            import wandb

            histogram = wandb.Histogram(np_histogram=(counts, np.arange(num_codes + 1)))
            logger.experiment.log({"media/codebook_usage_histogram": histogram,
                                   "trainer/global_step": trainer.global_step})

    def _motion_vae(self, trainer, module, batch, folder, prefix) -> None:
        out = module.generate(batch["reference_frame"], batch, sample=False)
        grid = module.sample_grid(batch, out)
        self._image(trainer, folder, prefix, "samples", _uint8(grid))
        root = getattr(trainer.datamodule, "root", None)
        if root is None:
            return
        fields = ("audio", "frames", "alpha", "beta", "pose", "lip_offsets")
        clip = next(iter_clips(root, "val", fields), None)
        if clip is None:
            return
        length = min(CLIP_FRAMES, clip.num_frames)
        device = module.device
        frames = torch.from_numpy(clip.frames[:length]).permute(0, 3, 1, 2).float().div(255).to(device)
        motion = {key: torch.from_numpy(getattr(clip, key)[:length]).to(device)
                  for key in ("beta", "pose", "lip_offsets")}
        reference = {"alpha": torch.from_numpy(clip.alpha)[None].to(device),
                     **{key: value[:1] for key, value in motion.items()}}
        generated = module.synthesize(frames[:1], reference, motion)["frame"]
        audio = clip.audio[: length * SAMPLE_RATE // FPS]
        self._video(trainer, folder, prefix, "clip_generated_vs_truth",
                    _uint8(torch.cat((generated, frames), dim=-1)), audio)
