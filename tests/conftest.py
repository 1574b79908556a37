"""Shared pytest set-up: CUDA-only tests are skipped on machines without a GPU; W&B never goes online."""

import csv
import os
from pathlib import Path

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


os.environ["WANDB_MODE"] = "offline"  # the configs log to W&B; tests never reach the network
os.environ["WANDB_SILENT"] = "true"
CSV_LOGGER_CONFIG = Path(__file__).resolve().parents[1] / "lightning_configs" / "loggers" / "csv.yaml"

TINY_CORPUS_ARGS = ("--clips", "6", "--seconds", "2", "--seed", "3", "--workers", "1")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """A 6-clip, 3-identity embedded corpus of 2-s clips (built once per test session, ~10 s)."""
    from talkinghead.data.cli import main as data_main

    root = tmp_path_factory.mktemp("tiny_corpus")
    assert data_main(["synth", "--out", str(root), *TINY_CORPUS_ARGS]) == 0
    return root


def logged_metrics(root: Path) -> dict[str, float]:
    """Every ``split/name`` value the CSV loggers under ``root`` wrote (the last one wins)."""
    values: dict[str, float] = {}
    for path in sorted(root.rglob("metrics.csv")):
        for row in csv.DictReader(path.open()):
            values.update({key: float(value) for key, value in row.items() if value and "/" in key})
    return values


def tiny_init_args(name: str) -> dict:
    """``model.init_args`` of ``lightning_configs/<name>_tiny.yaml``."""
    import yaml

    config = Path(__file__).resolve().parents[1] / "lightning_configs" / f"{name}_tiny.yaml"
    return yaml.safe_load(config.read_text())["model"]["init_args"]


def save_checkpoint(module, path: Path) -> Path:
    """Write a LightningModule's checkpoint as a trainer would (no training)."""
    import lightning

    trainer = lightning.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> Path:
    """A folder like ``outputs/demo/checkpoints`` with the four stages built from the ``*_tiny.yaml`` model
    arguments and **random weights** (no training, a few seconds): for contract tests of the pipeline and the
    notebooks, not for quality."""
    from talkinghead.lightning import FacialMotionModule, MotionVAEGeneratorModule, PoseMapperModule, PoseVQVAEModule

    folder = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    save_checkpoint(FacialMotionModule(**tiny_init_args("facial_motion")), folder / "facial_motion.ckpt")
    save_checkpoint(PoseVQVAEModule(**tiny_init_args("pose_vqvae")), folder / "pose_vqvae.ckpt")
    mapper = {**tiny_init_args("pose_mapper"), "vqvae_checkpoint": str(folder / "pose_vqvae.ckpt")}
    save_checkpoint(PoseMapperModule(**mapper), folder / "pose_mapper.ckpt")
    save_checkpoint(MotionVAEGeneratorModule(**tiny_init_args("motion_vae")), folder / "motion_vae.ckpt")
    return folder
