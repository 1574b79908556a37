"""``BestAndLastCheckpoint``: a ``ModelCheckpoint`` whose ``last.ckpt`` follows the run, the newest validation.

Lightning's (2.6) writes ``last.ckpt`` only together with a top-k checkpoint. With a monitored metric that stops
improving, ``last.ckpt`` stays at the last improvement, and a fit resumed from it (``--ckpt_path last.ckpt``)
repeats every epoch after: a 400-epoch fit whose best validation was at epoch 99 resumes at epoch 100.

:func:`newest_last_checkpoint` finds the ``last.ckpt`` a run directory's newest training wrote (every logger
version keeps its own ``checkpoints/`` folder).
"""

from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint


def newest_last_checkpoint(run_dir: str | Path) -> Path:
    """The most recently written ``checkpoints/last.ckpt`` under ``run_dir``; FileNotFoundError if there is none."""
    found = sorted(Path(run_dir).rglob("checkpoints/last.ckpt"), key=lambda path: path.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no checkpoints/last.ckpt under {run_dir}: nothing to resume, train first")
    return found[-1]


class BestAndLastCheckpoint(LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (the best checkpoints by the monitored metric, and ``last.ckpt``), whose
    ``last.ckpt`` is also written when a validation (or, for a callback that saves on train-epoch ends, an epoch)
    saved no top-k checkpoint."""

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_behind(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_behind(trainer)

    def _save_last_if_behind(self, trainer) -> None:
        """``last.ckpt`` at this step, unless the parent saved at it or saving is off (sanity check, fast dev run)."""
        if not self.save_last or self._should_skip_saving_checkpoint(trainer):
            return
        if self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
