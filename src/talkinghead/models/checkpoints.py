"""Inference networks from training checkpoints, without the training code.

A Lightning checkpoint is a dict holding ``hyper_parameters`` (the training module's constructor arguments) and
``state_dict``; each training module keeps its inference network under one attribute (``model.`` for the three
composite networks, ``net.`` for the pose VQ-VAE). :func:`load_network` rebuilds the network from the
hyperparameters its constructor takes and loads its weights strictly, reporting every missing or unexpected key.
Files are read with ``weights_only=True``.
"""

import inspect
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

Network = TypeVar("Network", bound=nn.Module)


class UnreadableCheckpointError(ValueError):
    """A file that ``torch.load(weights_only=True)`` cannot read (not a checkpoint, truncated, or pickling Python
    objects); the message names the file."""


def read_checkpoint(path: str | Path) -> dict:
    """A checkpoint file as a dict (``weights_only=True``, tensors on the CPU); ``FileNotFoundError`` naming it when it
    is missing, :class:`UnreadableCheckpointError` when ``torch.load`` cannot read it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError, EOFError, RuntimeError, KeyError, IndexError, … for other files
        raise UnreadableCheckpointError(f"{path}: not a readable checkpoint ({type(error).__name__})") from None
    if not isinstance(checkpoint, dict):
        raise UnreadableCheckpointError(
            f"{path}: not a checkpoint (it holds a {type(checkpoint).__name__}, not a dict)"
        )
    return checkpoint


def substate(checkpoint: dict, prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``checkpoint["state_dict"]`` under ``prefix``, with the prefix removed."""
    return {
        key.removeprefix(prefix): value for key, value in checkpoint["state_dict"].items() if key.startswith(prefix)
    }


def load_strict(network: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``network``; a ``RuntimeError`` names ``source`` and every missing/unexpected key."""
    expected = set(network.state_dict())
    missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected)
    if missing or unexpected:
        raise RuntimeError(f"{source} does not match its network: missing keys {missing}, unexpected keys {unexpected}")
    network.load_state_dict(state)


def network_arguments(cls: type, hyper_parameters: dict) -> dict:
    """The hyperparameters that are arguments of ``cls``'s constructor."""
    names = inspect.signature(cls).parameters
    return {key: value for key, value in hyper_parameters.items() if key in names}


def build_network(cls: type[Network], checkpoint: dict, source: str, prefix: str = "model.") -> Network:
    """``cls`` built from a checkpoint dict's hyperparameters, its weights the ``prefix`` entries (module
    docstring); ``source`` names the checkpoint in errors."""
    network = cls(**network_arguments(cls, dict(checkpoint.get("hyper_parameters", {}))))
    load_strict(network, substate(checkpoint, prefix), source)
    return network.eval()


def load_network(cls: type[Network], path: str | Path, prefix: str = "model.") -> Network:
    """:func:`build_network` of the checkpoint file ``path``."""
    return build_network(cls, read_checkpoint(path), f"checkpoint {path}", prefix)
