"""Progress of a fit as plain lines, for output that is not a terminal (a log file, a pipe, a Slurm job).

On a terminal Lightning draws a live progress bar; redirected to a file or a pipe that bar only shows its final
state, so a fit of hours would print nothing until it ends. :class:`LineProgress` prints one line at most every
``interval`` seconds, and one when training ends::

    facial_motion_tiny: epoch 37/350, step 259, 1:12 elapsed, ~10:10 left · train/loss 0.0412 · val/… 0.297

The run is the trainer's root folder; the time left extrapolates the fraction done of ``max_epochs`` or
``max_steps``, whichever ends the fit first, and is capped by ``max_time``; with an iterable dataset of unknown
length the epoch's batches are counted in the first epoch, so the estimate by epochs starts with the second.
The CLI uses it instead of Lightning's bar when standard output is not a terminal
(:mod:`talkinghead.lightning.cli`); like every progress bar it prints on the global rank 0 only.
"""

import math
import sys
import time
from pathlib import Path

from lightning.pytorch.callbacks import ProgressBar, Timer


def clock(seconds: float) -> str:
    """``seconds`` as ``M:SS`` or ``H:MM:SS``."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def fraction_done(epoch: float, max_epochs: int | None, step: int, max_steps: int) -> float | None:
    """How much of the fit is done, by the limit that ends it first (``None`` when neither bounds it)."""
    fractions = []
    if max_epochs is not None and max_epochs > 0:
        fractions.append(epoch / max_epochs)
    if max_steps is not None and max_steps > 0:
        fractions.append(step / max_steps)
    return max(fractions) if fractions else None


def time_left(elapsed: float, done: float | None, remaining: float | None) -> float | None:
    """Seconds until the fit ends: ``elapsed`` extrapolated over the fraction ``done``, at most the ``remaining``
    seconds a time limit leaves; ``None`` when there is nothing to extrapolate from and no time limit."""
    left = elapsed * (1 - done) / done if done else None
    if remaining is not None:
        left = max(0.0, remaining) if left is None else min(left, max(0.0, remaining))
    return left


def metric_text(name: str, value) -> str:
    """``name value`` with floats to four significant digits."""
    if isinstance(value, float):
        return f"{name} {value:.4g}"
    return f"{name} {value}"


class LineProgress(ProgressBar):
    """One line of progress every ``interval`` seconds of training, and one at its end (module docstring)."""

    def __init__(self, interval: float = 30.0, stream=None) -> None:
        super().__init__()
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.interval = interval
        self.stream = stream
        self._enabled = True
        self._start = 0.0
        self._last = 0.0
        self._epoch_batches = math.inf

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    @property
    def is_disabled(self) -> bool:
        return not self._enabled

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = self._last = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self.emit(trainer, pl_module, batch_idx + 1)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._epoch_batches = trainer.fit_loop.epoch_loop.batch_progress.current.ready

    def on_train_end(self, trainer, pl_module) -> None:
        self.emit(trainer, pl_module, None)

    def line(self, trainer, pl_module, batches_done: int | None) -> str:
        """The progress line after ``batches_done`` batches of the current epoch (``None``: the epoch is over)."""
        elapsed = time.monotonic() - self._start
        epoch = trainer.current_epoch
        per_epoch = self.total_train_batches  # infinite for an iterable dataset: then the last epoch's count
        per_epoch = per_epoch if math.isfinite(per_epoch) else self._epoch_batches
        if batches_done is not None and per_epoch and math.isfinite(per_epoch):
            epoch_done = epoch + min(batches_done / per_epoch, 1.0)
        else:
            epoch_done = float(epoch + (batches_done is None))
        max_epochs = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs >= 0 else None
        limit = trainer.fit_loop.epoch_loop.max_steps
        done = fraction_done(epoch_done, max_epochs, trainer.global_step, limit)
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)  # ``max_time`` makes one
        left = time_left(elapsed, done, timer.time_remaining() if timer is not None else None)
        shown_epoch = min(epoch + 1, max_epochs) if max_epochs else epoch + 1
        head = f"{Path(trainer.default_root_dir).name}: epoch {shown_epoch}"
        head += f"/{max_epochs}" if max_epochs else ""
        head += f", step {trainer.global_step}, {clock(elapsed)} elapsed"
        if batches_done is None:
            head += ", done"
        elif left is not None:
            head += f", ~{clock(left)} left"
        metrics = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if k != "v_num"}
        return " · ".join([head, *(metric_text(k, v) for k, v in metrics.items())])

    def emit(self, trainer, pl_module, batches_done: int | None) -> None:
        if self.is_enabled:
            print(self.line(trainer, pl_module, batches_done), file=self.stream or sys.stdout, flush=True)
