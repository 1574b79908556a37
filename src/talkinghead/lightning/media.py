"""``MediaLogger``: the one callback that writes every stage's pictures and videos (rank 0 only).

At the end of a validation run (not the sanity check; every ``every_n_validations``-th one) and of a test run it
asks the module for the media of the first batch it saw — ``module.log_media(batch, datamodule)``, a list of
:class:`Image`, :class:`Video` and :class:`Histogram` items (each module says what it shows in its docstring) —
and writes them to ``<log_dir>/media/<split>-step<N>-<key>.{png,mp4,csv}`` (``log_dir`` = the logger's, else the
trainer's root); a :class:`~lightning.pytorch.loggers.WandbLogger` also receives them as ``wandb.Image`` /
``wandb.Video`` / ``wandb.Histogram`` under ``media/<key>``.

The helpers below build the items the modules share: NCC renders (Eq. 9) of meshes, a side-by-side strip and
video of two render sequences, and a bar chart.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from torchvision.utils import make_grid

from talkinghead.conventions import FPS, SAMPLE_RATE
from talkinghead.face.camera import PerspectiveCamera
from talkinghead.face.morphable_model import MorphableModel
from talkinghead.image_tensors import to_uint8
from talkinghead.media import VideoWriter
from talkinghead.render import NCCRenderer, make_rasterizer

STRIP_FRAMES = 5


@dataclass
class Image:
    """A picture (H, W, 3) uint8 logged as ``key``."""

    key: str
    pixels: np.ndarray


@dataclass
class Video:
    """Frames (T, H, W, 3) uint8 at 25 fps with optional 16-kHz audio, logged as ``key``."""

    key: str
    frames: np.ndarray
    audio: np.ndarray | None = None


@dataclass
class Histogram:
    """Counts per bin (e.g. code uses), logged as ``key`` (a bar chart, a CSV row and a W&B histogram)."""

    key: str
    counts: np.ndarray
    title: str = ""


def ncc_renders(vertices: torch.Tensor, model: MorphableModel) -> torch.Tensor:
    """NCC renders (N, 3, 256, 256) in [0, 1] of world-space meshes (N, V, 3) seen by the crop camera."""
    renderer = NCCRenderer(model, PerspectiveCamera(), make_rasterizer("auto", vertices.device)).to(vertices.device)
    images, _ = renderer(vertices)
    return images


def side_by_side(key: str, left: torch.Tensor, right: torch.Tensor, audio: np.ndarray | None) -> list:
    """Two sequences (T, 3, H, W) in [0, 1] side by side: a strip of five frames and the whole video."""
    pair = torch.cat((left, right), dim=-1)  # (T, 3, H, 2W)
    picks = torch.linspace(0, len(pair) - 1, STRIP_FRAMES).round().long()
    strip = make_grid(pair[picks].float().cpu(), nrow=1, padding=2, pad_value=1.0)
    return [Image(key, to_uint8(strip)), Video(key, to_uint8(pair), audio)]


def first_audio(batch: dict) -> np.ndarray | None:
    """The first item's waveform of a batch, if it has audio."""
    audio = batch.get("audio")
    return None if audio is None else audio[0].float().cpu().numpy()


def bar_chart(counts: np.ndarray, title: str) -> np.ndarray:
    """A bar chart (H, W, 3) uint8 of counts per bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 2.5), dpi=100)
    axis.bar(np.arange(len(counts)), counts, width=1.0)
    axis.set(xlabel="code", ylabel="uses", title=title)
    figure.tight_layout()
    figure.canvas.draw()
    image = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return image


class MediaLogger(Callback):
    """See the module docstring. ``every_n_validations``: log at every n-th validation run."""

    def __init__(self, every_n_validations: int = 1) -> None:
        self.every_n_validations = every_n_validations
        self._batch: dict | None = None
        self._validations = 0

    def state_dict(self) -> dict:
        """The count of validation runs, so a resumed run logs at the same ones as an uninterrupted one."""
        return {"validations": self._validations}

    def load_state_dict(self, state_dict: dict) -> None:
        self._validations = state_dict.get("validations", 0)

    def on_validation_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
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
        # ``Trainer.log_dir`` is broadcast from rank 0, so every rank reads it before the rank-0-only part: read on
        # rank 0 alone it would wait forever for ranks already in the module's epoch-end metric sync.
        log_dir = trainer.log_dir
        if not trainer.is_global_zero or not hasattr(pl_module, "log_media"):
            return
        folder = Path(log_dir or trainer.default_root_dir) / "media"
        folder.mkdir(parents=True, exist_ok=True)
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                items = pl_module.log_media(self._batch, trainer.datamodule)
        finally:
            pl_module.train(was_training)
        prefix = f"{split}-step{trainer.global_step:07d}"
        for item in items:
            self._write(trainer, folder, prefix, item)

    def _wandb(self, trainer: Trainer) -> WandbLogger | None:
        return next((logger for logger in trainer.loggers if isinstance(logger, WandbLogger)), None)

    def _write(self, trainer: Trainer, folder: Path, prefix: str, item: Image | Video | Histogram) -> None:
        logger = self._wandb(trainer)
        path = folder / f"{prefix}-{item.key}"
        if isinstance(item, Image):
            from PIL import Image as PILImage

            PILImage.fromarray(item.pixels).save(path.with_suffix(".png"))
            if logger is not None:
                logger.log_image(
                    key=f"media/{item.key}", images=[str(path.with_suffix(".png"))], step=trainer.global_step
                )
        elif isinstance(item, Video):
            with VideoWriter(path.with_suffix(".mp4"), FPS, item.audio, SAMPLE_RATE) as writer:
                writer.write(item.frames)
            if logger is not None:
                import wandb

                logger.experiment.log(
                    {
                        f"media/{item.key}": wandb.Video(str(path.with_suffix(".mp4")), format="mp4"),
                        "trainer/global_step": trainer.global_step,
                    }
                )
        else:
            self._write(trainer, folder, prefix, Image(item.key, bar_chart(item.counts, item.title)))
            np.savetxt(path.with_suffix(".csv"), item.counts[None], fmt="%d", delimiter=",")
            if logger is not None:
                import wandb

                bins = np.arange(len(item.counts) + 1)
                logger.experiment.log(
                    {
                        f"media/{item.key}_histogram": wandb.Histogram(np_histogram=(item.counts, bins)),
                        "trainer/global_step": trainer.global_step,
                    }
                )
