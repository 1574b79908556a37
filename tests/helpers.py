"""Helpers the tests share: the tiny corpus arguments, tiny-config model arguments, checkpoints, logged metrics,
and loading a script of ``tools/`` as a module."""

import csv
import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
CSV_LOGGER_CONFIG = ROOT / "lightning_configs" / "loggers" / "csv.yaml"
TINY_CORPUS_ARGS = ("--clips", "6", "--seconds", "2", "--seed", "3", "--workers", "1")


def load_tool(name: str) -> ModuleType:
    """``tools/<name>.py`` imported as a module (the scripts are not part of the package)."""
    spec = importlib.util.spec_from_file_location(f"tools_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def logged_metrics(root: Path) -> dict[str, float]:
    """Every ``split/name`` value the CSV loggers under ``root`` wrote (the last one wins)."""
    values: dict[str, float] = {}
    for path in sorted(root.rglob("metrics.csv")):
        for row in csv.DictReader(path.open()):
            values.update({key: float(value) for key, value in row.items() if value and "/" in key})
    return values


def config_init_args(name: str) -> dict:
    """``model.init_args`` of ``lightning_configs/<name>.yaml``."""
    import yaml

    return yaml.safe_load((ROOT / "lightning_configs" / f"{name}.yaml").read_text())["model"]["init_args"]


def tiny_init_args(name: str) -> dict:
    """``model.init_args`` of ``lightning_configs/<name>_tiny.yaml``."""
    return config_init_args(f"{name}_tiny")


def save_checkpoint(module, path: Path) -> Path:
    """Write a LightningModule's checkpoint as a trainer would (no training)."""
    import lightning

    trainer = lightning.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return path


def save_wav2vec2_standin(folder: Path) -> Path:
    """A small random wav2vec 2.0 saved like a pretrained one (``save_pretrained``): ``Wav2Vec2Config()`` defaults —
    LayerDrop, SpecAugment's ``masked_spec_embed``, the 7-layer feature encoder — at a small width and depth. It
    stands in for ``facebook/wav2vec2-base-960h``, which the tests never download."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    config = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7
    )
    Wav2Vec2Model(config).save_pretrained(folder)
    return folder
