"""Every paper-size config trains under DDP: two processes on the CPU (gloo), the code path of N GPUs (NCCL).

Each config runs as a user runs it — ``talkinghead fit --config lightning_configs/<stage>.yaml`` in a subprocess,
so Lightning's DDP launcher starts the second process the way it does on a GPU machine — with the rehearsal
overrides ``--trainer.accelerator cpu --trainer.devices 2 --trainer.strategy ddp --trainer.precision 32
--trainer.max_steps 4 --trainer.limit_val_batches 1 --data.batch_size 2 --data.num_workers 0`` (plus validation
every second epoch and no sanity pass, for time: the tiny corpus gives one batch per epoch, so validation still
runs twice and training continues after the first), a small random
wav2vec 2.0 with the library's default settings saved to a local folder (:func:`tests.helpers.
save_wav2vec2_standin`) and the weight-free perceptual loss. The networks keep the paper's architecture at reduced
widths (:data:`REDUCED`) so the four runs fit the test budget; a hang is caught by a timeout that kills the
process group, so a deadlock fails the test instead of stalling the suite.
"""

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from talkinghead.data.datamodule import ShardWindowDataset
from talkinghead.lightning.cli import import_class
from tests.helpers import CSV_LOGGER_CONFIG, ROOT, save_wav2vec2_standin

DDP = (
    "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
    "--trainer.precision", "32", "--trainer.max_steps", "4", "--trainer.limit_val_batches", "1",
    "--data.batch_size", "2", "--data.num_workers", "0", "--trainer.enable_progress_bar", "false",
    "--trainer.log_every_n_steps", "1", "--trainer.check_val_every_n_epoch", "2",
    "--trainer.num_sanity_val_steps", "0",
)  # fmt: skip
SMALL_NETWORK = {"d_model": 64, "ff_dim": 128}
REDUCED = {  # model.init_args / data overrides, written to a second --config (YAML keeps the types)
    "facial_motion": ({"network": {**SMALL_NETWORK, "condition_range": True}}, {"window": 32}),
    "pose_vqvae": ({"network": SMALL_NETWORK}, {"window": 32}),
    # the session corpus has 2-s (50-frame) clips; the condition ranges are on to check their union over the ranks
    "pose_mapper": ({"network": {**SMALL_NETWORK, "condition_range": True}}, {"window": 32}),
    "motion_vae": (
        {"perceptual": "gradients", "perceptual_args": None, "discriminator_start": 1, "render_size": 128,
         "mouth_metric": False},
        {},
    ),
}  # fmt: skip
TIMEOUT_S = 600


@pytest.fixture(scope="module")
def wav2vec2(tmp_path_factory) -> Path:
    return save_wav2vec2_standin(tmp_path_factory.mktemp("wav2vec2") / "model")


def reduced_config(stage: str, folder: Path) -> Path:
    """A second config with :data:`REDUCED`'s overrides merged into the paper config's dicts."""
    paper = yaml.safe_load((ROOT / "lightning_configs" / f"{stage}.yaml").read_text())
    model, data = REDUCED[stage]
    init_args = paper["model"]["init_args"]
    model = {key: {**init_args[key], **value} if isinstance(value, dict) else value for key, value in model.items()}
    path = folder / f"{stage}_reduced.yaml"
    path.write_text(yaml.safe_dump({"model": {"init_args": model}, "data": data}))
    return path


def fit(stage: str, corpus: Path, run: Path, *extra: str) -> subprocess.CompletedProcess:
    """``talkinghead fit`` of a paper config under 2-process CPU DDP (module docstring); kills a hang."""
    run.mkdir(parents=True)
    command = [
        sys.executable, "-m", "talkinghead.lightning.cli", "fit",
        "--config", str(ROOT / "lightning_configs" / f"{stage}.yaml"), "--config", str(reduced_config(stage, run)),
        "--config", str(CSV_LOGGER_CONFIG),
        "--data.root", str(corpus), "--trainer.default_root_dir", str(run),
        "--trainer.logger.init_args.save_dir", str(run), *DDP, *extra,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               start_new_session=True)  # fmt: skip
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{stage}: DDP fit still running after {TIMEOUT_S} s (a hang):\n{output[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, output)


def test_every_paper_config_trains_under_two_process_ddp(tiny_corpus, wav2vec2, tmp_path):
    audio = ("--model.init_args.audio_encoder_args.name_or_path", str(wav2vec2))
    steps = {}
    for stage, extra in (
        ("facial_motion", audio),
        ("pose_vqvae", ()),
        ("pose_mapper", (*audio, "--model.init_args.vqvae_checkpoint", "{vqvae}")),
        ("motion_vae", ("--trainer.max_steps", "8")),  # manual optimisation: both optimizers' steps count
    ):
        run = tmp_path / stage
        if "{vqvae}" in extra:
            extra = [arg.format(vqvae=next((tmp_path / "pose_vqvae").rglob("last.ckpt"))) for arg in extra]
        result = fit(stage, tiny_corpus, run, *extra)
        assert result.returncode == 0, f"{stage}:\n{result.stdout[-3000:]}"
        rows = [row for path in (run / "logs").rglob("metrics.csv") for row in csv.DictReader(path.open())]
        steps[stage] = len({row["step"] for row in rows if row.get("train/loss")})
        assert any(row.get(module_metric(stage)) for row in rows), stage  # validation ran and logged
    # 4 training batches each; stage 2: 5 batches = 5 generator + 4 discriminator steps (it starts at step 1)
    assert steps == {"facial_motion": 4, "pose_vqvae": 4, "pose_mapper": 4, "motion_vae": 5}
    for stage in ("facial_motion", "pose_mapper"):
        assert_condition_range_covers_the_training_identities(tiny_corpus, tmp_path / stage)


def assert_condition_range_covers_the_training_identities(corpus: Path, run: Path) -> None:
    """4 steps × 2 ranks × 2 windows pass every training clip of the session corpus at least once (one batch per
    rank and epoch), so the trained α range is exactly the extent of the training clips' α / σ_α, both ranks'
    included (the trained state: the checkpoint's ``state_dict`` holds the EMA's average of the first 4 steps).
    Both stages' networks are ``model.net`` in the state dict."""
    state = torch.load(next(run.rglob("last.ckpt")), map_location="cpu", weights_only=True)["current_model_state"]
    std = state["model.net.identity_std"]
    alphas = torch.stack([clip["alpha"] / std for clip in ShardWindowDataset(corpus, "train", fields=["alpha"])])
    low, high = state["model.net.condition_range.low"], state["model.net.condition_range.high"]
    assert torch.equal(low[: len(std)], alphas.amin(0)) and torch.equal(high[: len(std)], alphas.amax(0))


def module_metric(stage: str) -> str:
    """The validation metric the stage's checkpoints are chosen on."""
    module = yaml.safe_load((ROOT / "lightning_configs" / f"{stage}.yaml").read_text())["model"]["class_path"]
    return import_class(module).MONITOR[0]
