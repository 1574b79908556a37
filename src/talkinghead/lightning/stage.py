"""The skeleton every stage module shares: per-split metrics, evaluation hooks, epoch logging and the optimizer."""

from collections.abc import Callable, Iterable
from typing import Any

import lightning
import torch
from torchmetrics import Metric

from talkinghead.audio.augmentation import SpeechAugmentation
from talkinghead.lightning.quiet import expect_frozen_modules_in_eval_mode, silence_known_messages
from talkinghead.models.observed_range import ObservedRange

EVAL_SPLITS = ("val", "test")
silence_known_messages()


class ConfigurationError(ValueError):
    """A training run configured so it cannot start (e.g. a required checkpoint not given); one line for the user."""


def adamw(parameters: Iterable[torch.nn.Parameter], **options: Any) -> torch.optim.AdamW:
    """``torch.optim.AdamW(parameters, **options)``, with PyTorch's fused kernel when every parameter is on the CPU.

    For the tiny networks the default per-parameter loop is a large part of a CPU training step: 18 ms a step for
    the facial-motion stage's 187 tensors against 1.6 ms fused (2-core machine, docs/RESULTS.md, "sixteenth
    pass"). On GPUs PyTorch's default (``foreach``) stays: a fused optimizer unscales its own gradients, which
    Lightning's gradient clipping under ``16-mixed`` precision refuses.
    """
    parameters = list(parameters)
    return torch.optim.AdamW(parameters, fused=all(p.device.type == "cpu" for p in parameters), **options)


def warmup(optimizer: torch.optim.Optimizer, steps: int) -> dict:
    """A Lightning scheduler config ramping the learning rate linearly from ``1/steps`` of its value to all of it over
    the first ``steps`` optimizer steps of the run (counted by the optimizer, so it survives resuming)."""
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / steps))
    return {"scheduler": schedule, "interval": "step"}


class StageModule(lightning.LightningModule):
    """Training logs the ``(loss, {"train/…": …})`` pair of the subclass's ``loss(batch)``. Validation and test
    call ``_evaluate(batch, split)`` per batch (``split`` is ``"val"`` or ``"test"``), which updates
    ``self.metrics[split]`` (made by :meth:`split_metrics`); at the end of the epoch every metric of the split is
    computed — on every rank, so the metrics' synchronisation never waits for a rank that skipped one — passed
    through :meth:`epoch_values` and logged as ``split/name``. The optimizer is AdamW over the trainable
    parameters with the subclass's ``lr`` and ``weight_decay`` hyperparameters (frozen stages are left out).
    ``log_media(batch, datamodule)`` lists the pictures and videos :class:`~talkinghead.lightning.media.MediaLogger`
    writes for a validation or test batch (none by default). ``MONITOR`` = (validation metric, ``"min"`` or ``"max"``)
    is what the CLI's checkpoint callback keeps the best checkpoint on. ``EVALUATION_ARGS`` names the constructor
    arguments that change only how the module evaluates (not its network): given with ``--ckpt_path``, they keep
    the values given instead of the checkpoint's. Under DDP, the networks' observed condition ranges are merged
    over the processes after every training step (:meth:`on_train_batch_end`)."""

    MONITOR: tuple[str, str] | None = None
    EVALUATION_ARGS: tuple[str, ...] = ()

    metrics: torch.nn.ModuleDict

    def __init__(self) -> None:
        super().__init__()
        self.augment: SpeechAugmentation | None = None

    @staticmethod
    def split_metrics(make: Callable[[], dict[str, Metric]]) -> torch.nn.ModuleDict:
        """One fresh set of metrics per evaluation split: ``{"val": {...}, "test": {...}}``."""
        return torch.nn.ModuleDict({split: torch.nn.ModuleDict(make()) for split in EVAL_SPLITS})

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def on_fit_start(self) -> None:
        expect_frozen_modules_in_eval_mode(self)

    def use_speech_augmentation(self, arguments: dict[str, Any] | None) -> None:
        """Train on speech under random recording conditions (:class:`SpeechAugmentation` of ``arguments``);
        ``None`` keeps the speech as recorded."""
        self.augment = None if arguments is None else SpeechAugmentation(**arguments)

    def training_speech(self, audio: torch.Tensor) -> torch.Tensor:
        """The batch's speech as the networks hear it: augmented while training, unchanged otherwise."""
        return self.augment(audio) if self.training and self.augment is not None else audio

    def _evaluate(self, batch: dict, split: str) -> None:
        raise NotImplementedError

    def epoch_values(self, values: dict[str, object]) -> dict[str, torch.Tensor]:
        """The logged values of a split from its computed metrics (derived values are added here)."""
        return values

    def log_media(self, batch: dict, datamodule: object) -> list:
        return []

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, logs = self.loss(batch)
        self.log_dict(logs, prog_bar=True, batch_size=len(batch["clip_id"]))
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Under DDP, widen every process' :class:`~talkinghead.models.observed_range.ObservedRange` (a network's
        ``condition_range``) to the union of all of theirs after each step, so the range saved from rank 0 covers
        every rank's batches."""
        if self.trainer.world_size > 1:
            for observed in (module for module in self.modules() if isinstance(module, ObservedRange)):
                observed.widen(self.all_gather(observed.low).amin(0), self.all_gather(observed.high).amax(0))

    def _log_epoch(self, split: str) -> None:
        metrics = self.metrics[split]
        values = self.epoch_values({name: metric.compute() for name, metric in metrics.items()})
        self.log_dict({f"{split}/{name}": value for name, value in values.items()}, prog_bar=split == "val")
        for metric in metrics.values():
            metric.reset()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self) -> torch.optim.Optimizer | dict:
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = adamw(trainable, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        if not self.hparams.get("warmup_steps"):
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": warmup(optimizer, self.hparams.warmup_steps)}
