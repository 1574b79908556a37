"""Exported weights: the three inference networks as safetensors + JSON, loadable without training code.

An export is one folder (or a Hugging Face Hub repository holding one) with, per network:

* ``NAME.safetensors``: the network's ``state_dict`` (inference weights only, no optimiser or training-loss
  state), read with safetensors' own loader, never unpickled;
* ``NAME.json``: ``{"format": "talkinghead-export", "format_version": 1, "class": …, "arguments": …}``, the
  constructor arguments that rebuild the network. An audio encoder's arguments are portable
  (:meth:`talkinghead.audio.encoders.AudioEncoder.portable_args`): wav2vec 2.0 is described by its configuration
  dict, so the network is rebuilt from the export alone, without the hub or its cache;

for ``NAME`` in :data:`EXPORTED_NETWORKS`, plus a model card ``README.md``. :func:`write_export` writes the folder
atomically (a hidden temporary folder renamed when complete); :func:`load_export` rebuilds the networks strictly;
:func:`locate_export` turns a folder or a hub id into a local folder, looking in the local hub cache before any
download.
"""

import json
import os
import shutil
from pathlib import Path

import torch
from huggingface_hub import is_offline_mode, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError
from huggingface_hub.utils import validate_repo_id
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from talkinghead.models.audio_to_motion import AudioToMotion
from talkinghead.models.checkpoints import load_strict
from talkinghead.models.head_pose import HeadPoseGenerator
from talkinghead.models.mesh_to_video import MeshToVideo

EXPORT_FORMAT = "talkinghead-export"
FORMAT_VERSION = 1
EXPORTED_NETWORKS: dict[str, type[nn.Module]] = {
    "audio_to_motion": AudioToMotion,
    "head_pose": HeadPoseGenerator,
    "mesh_to_video": MeshToVideo,
}
MODEL_CARD = "README.md"
HUB_PATTERNS = ["*.json", "*.safetensors", MODEL_CARD]


class ExportError(ValueError):
    """An export that cannot be written, found or read; the message is one line naming the problem."""


def export_files() -> list[str]:
    """The files every export holds, model card last."""
    return [f"{name}.{suffix}" for name in EXPORTED_NETWORKS for suffix in ("json", "safetensors")] + [MODEL_CARD]


def is_export(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds every file of an export."""
    return Path(folder).is_dir() and all((Path(folder) / name).is_file() for name in export_files())


def portable_arguments(network: nn.Module, arguments: dict) -> dict:
    """``arguments`` with an audio encoder's replaced by its portable form (module docstring)."""
    arguments = dict(arguments)
    encoder = getattr(network, "audio_encoder", None)
    if encoder is not None:
        arguments["audio_encoder_args"] = encoder.portable_args(arguments.get("audio_encoder_args") or {})
    return arguments


def network_config(network: nn.Module, arguments: dict) -> dict:
    """The JSON document that rebuilds ``network`` (built with ``arguments``)."""
    return {
        "format": EXPORT_FORMAT,
        "format_version": FORMAT_VERSION,
        "class": type(network).__name__,
        "arguments": portable_arguments(network, arguments),
    }


def _state_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Whether two state dicts hold the same keys with equal tensors (dtype, shape, values)."""
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def write_export(folder: str | os.PathLike, networks: dict[str, tuple[nn.Module, dict]], card: str) -> Path:
    """Write ``networks`` (name → (network, constructor arguments), one per :data:`EXPORTED_NETWORKS` name) and the
    model card ``card`` to ``folder`` atomically; a previous export there is replaced, any other non-empty folder
    is refused."""
    folder = Path(folder)
    if sorted(networks) != sorted(EXPORTED_NETWORKS):
        raise ExportError(f"an export holds exactly the networks {sorted(EXPORTED_NETWORKS)}, got {sorted(networks)}")
    if folder.exists() and not (folder.is_dir() and (is_export(folder) or not any(folder.iterdir()))):
        raise ExportError(f"{str(folder)!r} exists and is not an export: choose a new or empty folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp, old = folder.with_name(f".{folder.name}.part"), folder.with_name(f".{folder.name}.old")
    for leftover in (temp, old):
        shutil.rmtree(leftover, ignore_errors=True)
    temp.mkdir()
    try:
        for name, (network, arguments) in networks.items():
            config = network_config(network, arguments)
            try:
                text = json.dumps(config, indent=2, allow_nan=False)
            except (TypeError, ValueError) as error:
                raise ExportError(f"{name}: constructor arguments are not plain JSON ({error})") from None
            (temp / f"{name}.json").write_text(text + "\n")
            state = {key: value.detach().cpu().contiguous() for key, value in network.state_dict().items()}
            save_file(state, temp / f"{name}.safetensors", metadata={"format": "pt", "class": config["class"]})
            if not _state_equal(state, load_file(temp / f"{name}.safetensors")):
                raise ExportError(f"{name}: the written weights do not read back equal")
        (temp / MODEL_CARD).write_text(card)
        if folder.exists():
            os.replace(folder, old)
        try:
            os.replace(temp, folder)
        except OSError:
            if old.exists():
                os.replace(old, folder)
            raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return folder


def read_config(folder: Path, name: str) -> dict:
    """``NAME.json`` of an export, checked: format, version and class."""
    path = folder / f"{name}.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ExportError(f"{path}: not a readable export config ({error})") from None
    if not isinstance(config, dict) or config.get("format") != EXPORT_FORMAT:
        raise ExportError(f"{path}: not a talkinghead export config")
    if config.get("format_version") != FORMAT_VERSION:
        raise ExportError(f"{path}: export format version {config.get('format_version')}, expected {FORMAT_VERSION}")
    expected = EXPORTED_NETWORKS[name].__name__
    if config.get("class") != expected or not isinstance(config.get("arguments"), dict):
        raise ExportError(f"{path}: holds {config.get('class')!r}, expected {expected!r} and its arguments")
    return config


def load_exported_network(folder: str | os.PathLike, name: str) -> nn.Module:
    """The network ``name`` of an export folder, rebuilt from its JSON and loaded strictly (eval mode, CPU)."""
    folder = Path(folder)
    config = read_config(folder, name)
    path = folder / f"{name}.safetensors"
    try:
        state = load_file(path, device="cpu")
    except (OSError, SafetensorError) as error:
        raise ExportError(f"{path}: not readable safetensors ({error})") from None
    try:
        network = EXPORTED_NETWORKS[name](**config["arguments"])
    except (TypeError, ValueError) as error:
        raise ExportError(f"{folder / f'{name}.json'}: arguments do not build {config['class']} ({error})") from None
    try:
        load_strict(network, state, str(path))
    except RuntimeError as error:
        raise ExportError(str(error).splitlines()[0]) from None
    return network.eval()


def load_export(folder: str | os.PathLike) -> dict[str, nn.Module]:
    """Every network of the export ``folder`` by name (:data:`EXPORTED_NETWORKS`)."""
    folder = Path(folder)
    missing = [name for name in export_files() if not (folder / name).is_file()]
    if missing:
        raise ExportError(f"{str(folder)!r} is not a talkinghead export: missing {', '.join(missing)}")
    return {name: load_exported_network(folder, name) for name in EXPORTED_NETWORKS}


def is_hub_id(name: str) -> bool:
    """Whether ``name`` is a Hugging Face Hub repository id of the form ``owner/name`` (a bare word is more likely a
    mistyped local folder than a hub id, and must not reach the network)."""
    if name.count("/") != 1:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def locate_export(
    name_or_path: str | os.PathLike, revision: str | None = None, cache_dir: str | os.PathLike | None = None
) -> Path:
    """A local folder as is; otherwise a Hugging Face Hub id, resolved by ``snapshot_download`` (only the
    export's files): from the local cache (``cache_dir`` or ``HF_HUB_CACHE``) without any network first, downloaded
    only when it is not cached and offline mode (``HF_HUB_OFFLINE``) is off."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ExportError(f"{str(name_or_path)!r} is a file, not an export folder")
        return path
    repo_id = str(name_or_path)
    if not is_hub_id(repo_id):
        raise ExportError(f"{repo_id!r}: no such folder (nor a Hugging Face Hub id)")
    options = {"revision": revision, "cache_dir": cache_dir, "allow_patterns": HUB_PATTERNS}
    try:
        return Path(snapshot_download(repo_id, local_files_only=True, **options))
    except LocalEntryNotFoundError:
        if is_offline_mode():
            raise ExportError(
                f"{repo_id!r}: no such folder, and not in the Hugging Face cache (HF_HUB_OFFLINE is set)"
            ) from None
    try:
        return Path(snapshot_download(repo_id, **options))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(
            f"{repo_id!r}: no such folder, and not downloadable from the Hugging Face Hub ({reason})"
        ) from None
