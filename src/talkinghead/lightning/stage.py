"""The skeleton every stage module shares: per-split evaluation hooks and the optimizer."""

import lightning
import torch


class StageModule(lightning.LightningModule):
    """Training logs the ``(loss, {"train/…": …})`` pair of the subclass's ``loss(batch)``. Validation and
    test call ``_evaluate(batch, split)`` per batch and ``_log_epoch(split)`` at the end of the epoch
    (``split`` is ``"val"`` or ``"test"``). The optimizer is AdamW over the trainable parameters with the
    subclass's ``lr`` and ``weight_decay`` hyperparameters (frozen stages are left out)."""

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def _evaluate(self, batch: dict, split: str) -> None:
        raise NotImplementedError

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, logs = self.loss(batch)
        self.log_dict(logs, prog_bar=True, batch_size=len(batch["clip_id"]))
        return loss

    def _log_epoch(self, split: str) -> None:
        raise NotImplementedError

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        trainable = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.AdamW(trainable, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
