"""``RNGState``: the global random number generators travel in the checkpoint, so a resumed run draws what an
uninterrupted one draws.

Lightning checkpoints weights, optimizers and loop counters but not the global RNGs, and a resumed run reseeds
them (``seed_everything``) and draws from them again to build the model before the weights arrive. Training
draws from them at every step (dropout, scheduled sampling's mix of ground truth and predictions, the pose
VQ-VAE's dead-code restarts), so without their states a resumed run takes other random decisions than the run it
continues. The data order needs none of them (see :mod:`talkinghead.data.datamodule`).
"""

import logging
import random
from typing import Any

import lightning
import numpy as np
import torch
import torch.distributed
from lightning.pytorch import Callback

log = logging.getLogger(__name__)


def collect_rng_states() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's global generators (CPU, and the current CUDA device's if used),
    as tensors and plain values, which a checkpoint loaded with ``weights_only=True`` accepts."""
    version, key, gauss = random.getstate()
    name, mt, position, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (the global state itself)
    states = {
        "python": (version, torch.tensor(key, dtype=torch.int64), gauss),
        "numpy": (name, torch.from_numpy(mt.astype(np.int64)), int(position), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`collect_rng_states` returned."""
    version, key, gauss = states["python"]
    random.setstate((version, tuple(key.tolist()), gauss))
    name, mt, position, has_gauss, cached = states["numpy"]
    np.random.set_state((name, mt.numpy().astype(np.uint32), position, has_gauss, cached))  # noqa: NPY002
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])


class RNGState(Callback):
    """Saves every rank's global RNG states in the checkpoint and restores each rank's own when training resumes.

    The states are gathered from all ranks when a checkpoint is written (every rank takes part in writing one) and
    restored at the start of training, after the restore and the sanity check (which Lightning runs with its RNG
    isolated), so nothing that runs before the first step, such as a logger starting, shifts them. A run resumed
    on a different number of ranks keeps its freshly seeded generators on the ranks it has no state for.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        states = collect_rng_states()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, states)
            return {"ranks": gathered}
        return {"ranks": [states]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = dict(state_dict)

    def on_train_start(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        ranks = pending["ranks"]
        if trainer.global_rank < len(ranks):
            set_rng_states(ranks[trainer.global_rank])
        else:
            log.warning(
                "rank %d keeps fresh RNG states: the checkpoint holds them for %d ranks",
                trainer.global_rank,
                len(ranks),
            )
