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
