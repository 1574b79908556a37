"""``BatchRecorder``: a callback that records which windows every training step trains on (for the resume tests;
a module of its own so that only the tests that train import Lightning)."""

import json
from pathlib import Path

from lightning.pytorch import Callback


class BatchRecorder(Callback):
    """Appends ``[global_step, epoch, clip ids, window starts]`` of every training step as a JSON line to ``path``
    (``--trainer.callbacks+=tests.batch_recorder.BatchRecorder --trainer.callbacks.path FILE``)."""

    def __init__(self, path: str):
        self.path = Path(path)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        row = [trainer.global_step, trainer.current_epoch, list(batch["clip_id"]), batch["start"].tolist()]
        with self.path.open("a") as file:
            file.write(json.dumps(row) + "\n")


def recorded(path: Path) -> list[list]:
    """The rows a :class:`BatchRecorder` wrote to ``path``, in step order."""
    return [json.loads(line) for line in path.read_text().splitlines()]
