"""Shared pytest set-up: CUDA-only tests are skipped on machines without a GPU; W&B never goes online; under
pytest-xdist (``make test`` runs one worker per core) each worker computes on one thread, so the workers do not
oversubscribe the cores."""

import logging
import os
from pathlib import Path

import pytest
import torch

from talkinghead.cli_conventions import PACKAGE
from tests.helpers import TINY_CORPUS_ARGS, save_checkpoint, tiny_init_args


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


os.environ["WANDB_MODE"] = "offline"  # the configs log to W&B; tests never reach the network
os.environ["WANDB_SILENT"] = "true"
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """A 6-clip, 3-identity embedded corpus of 2-s clips (built once per test session, ~10 s)."""
    from talkinghead.data.cli import main as data_main

    root = tmp_path_factory.mktemp("tiny_corpus")
    assert data_main(["synth", "--out", str(root), *TINY_CORPUS_ARGS]) == 0
    return root


@pytest.fixture(scope="session")
def tiny_speech_corpus(tmp_path_factory):
    """The tiny corpus built with ``--no-frames``: its speech and motion without frames (~3 s)."""
    from talkinghead.data.cli import main as data_main

    root = tmp_path_factory.mktemp("tiny_speech_corpus")
    assert data_main(["synth", "--out", str(root), *TINY_CORPUS_ARGS, "--no-frames"]) == 0
    return root


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


@pytest.fixture(autouse=True)
def restore_logging():
    """Undo what :func:`configure_logging` and ``talkinghead -q`` change, so no later test sees it."""
    root = logging.getLogger()
    names = (PACKAGE, "lightning.pytorch", "lightning.fabric")
    handlers, level, levels = list(root.handlers), root.level, {n: logging.getLogger(n).level for n in names}
    yield
    logging.captureWarnings(False)
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)
