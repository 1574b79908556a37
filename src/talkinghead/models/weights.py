"""Loading user-supplied third-party weights: one clear line on every failure, no silent partial loads.

Every pretrained network of the evaluation (SyncNet, Inception v3, the identity backbone) comes from a file
the user names; nothing is downloaded. State dicts are read with ``torch.load(weights_only=True)`` (tensors
and plain containers only, no pickled code) and loaded strictly: missing or unexpected keys and shape
mismatches raise :class:`WeightsError` naming the file and the first offending keys. The one exception is
BatchNorm's ``num_batches_tracked`` counter, which files saved before PyTorch 0.4.1 (such as the 2018
SyncNet release may be) do not have; it only matters in training, so it is set to 0 when absent.
"""

import os
import re
import warnings
from pathlib import Path

import torch
from torch import nn

NOT_SUPPLIED = "n/a (weights not supplied)"


class WeightsError(ValueError):
    """A weights file that cannot be used; the message is one line naming the file and the problem."""


def weights_error(what: str, path: str | os.PathLike, problem: str) -> WeightsError:
    return WeightsError(f"{what} weights {str(path)!r}: {' '.join(str(problem).split())}")


def checked_file(what: str, path: str | os.PathLike) -> Path:
    """``path`` as a :class:`Path` when it is a non-empty file, else :class:`WeightsError`."""
    path = Path(path)
    if not path.is_file():
        raise weights_error(what, path, "no such file")
    if path.stat().st_size == 0:
        raise weights_error(what, path, "empty file (0 bytes)")
    return path


def load_state_dict_file(what: str, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A ``{name: tensor}`` state dict from a ``torch.save`` file (``weights_only=True``, mapped to the CPU)."""
    path = checked_file(what, path)
    try:
        with warnings.catch_warnings():  # the unpickler warns about odd protocols before it fails or copes
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, … for corrupt files
        raise weights_error(what, path, _load_failure(error)) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise weights_error(what, path, f"expected a state dict of tensors, got {type(state).__name__}")
    return state


def _load_failure(error: Exception) -> str:
    """The useful part of a ``torch.load`` failure, in a few words."""
    text = str(error)
    reason = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\. |\n|$)", text)
    if reason and "GLOBAL" in reason.group(1):
        return f"pickles Python objects, not only tensors ({reason.group(1).strip()}); save model.state_dict() instead"
    if reason:
        return f"not a readable torch state dict ({reason.group(1).strip()})"
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return f"not a readable torch state dict ({first})"


def _listing(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return f"{len(keys)} ({shown}{', …' if len(keys) > limit else ''})"


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], what: str, path: str | os.PathLike) -> None:
    """Load ``state`` into ``module``; any missing/unexpected key or shape mismatch is a :class:`WeightsError`."""
    expected = module.state_dict()
    state = dict(state)
    for key, value in expected.items():
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    check_fits(expected, state, what, path)
    module.load_state_dict(state, strict=True)


def check_fits(
    expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], what: str, path: str | os.PathLike
) -> None:
    """:class:`WeightsError` unless ``state`` has exactly the keys of ``expected``, with the same shapes."""
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        f"{key} {tuple(state[key].shape)} vs {tuple(value.shape)}"
        for key, value in expected.items()
        if key in state and state[key].shape != value.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_listing(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches {_listing(mismatched)}")
    if problems:
        raise weights_error(what, path, "does not fit the network: " + "; ".join(problems))
