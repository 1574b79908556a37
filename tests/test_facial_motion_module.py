"""FacialMotionModule (Eq. 11) through Lightning: overfitting, gradients, checkpoints, the CLI, DDP."""

import math
import subprocess
import sys
from pathlib import Path

import lightning
import pytest
import torch
import yaml

from talkinghead.data.datamodule import ShardWindowDataset, TalkingHeadDataModule
from talkinghead.lightning import FacialMotionModule
from talkinghead.lightning.cli import main as cli_main
from talkinghead.media import probe_video
from tests.helpers import CSV_LOGGER_CONFIG, logged_metrics
from tests.test_ddp_paper_configs import assert_condition_range_covers_the_training_identities

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "lightning_configs" / "facial_motion_tiny.yaml"
SMALL_NETWORK = {"d_model": 32, "num_heads": 2, "num_layers": 1, "ff_dim": 64, "dropout": 0.0}


@pytest.fixture(scope="module")
def batch(tiny_corpus):
    data = TalkingHeadDataModule(
        str(tiny_corpus), fields=["audio", "alpha", "beta", "lip_offsets"], window=25, batch_size=4
    )
    data.setup()
    return next(iter(data.train_dataloader()))


def test_overfits_one_batch(batch):
    """Eq. 11 on one fixed batch falls by ≥ 10× within 300 Adam steps (teacher forcing)."""
    torch.manual_seed(0)
    module = FacialMotionModule(network=SMALL_NETWORK, lip_weight=4.0)
    optimizer = torch.optim.Adam(module.parameters(), lr=3e-3)
    first = None
    for _ in range(300):
        optimizer.zero_grad()
        loss, _ = module.loss(batch)
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
    assert loss.item() < first / 10, (first, loss.item())


def test_every_trainable_parameter_gets_a_gradient(batch):
    module = FacialMotionModule(network=SMALL_NETWORK, teacher_forcing_ratio=0.5)
    module.train()
    loss, logs = module.loss(batch)
    loss.backward()
    missing = [
        name for name, p in module.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())
    ]
    assert not missing
    assert set(logs) == {"train/loss", "train/blendshape_l1", "train/mesh_cm"}


def test_velocity_term_charges_a_still_prediction_the_targets_motion():
    """Exact cases of ‖Δβ − Δβ̂‖₁ + ‖ΔM − ΔM̂‖: zero for the target itself and for the target shifted by a
    constant; a still prediction pays the target's mean |Δβ| plus its mean weighted vertex speed."""
    module = FacialMotionModule(network=SMALL_NETWORK, velocity_weight=1.0)
    torch.manual_seed(0)
    beta = torch.rand(2, 6, 52)
    mesh = torch.randn(2, 6, module.vertex_weight.numel(), 3)
    assert module.velocity_loss(beta, beta, mesh, mesh).item() == 0.0
    assert module.velocity_loss(beta + 0.3, beta, mesh + 1.0, mesh).item() == pytest.approx(0.0, abs=1e-6)
    still_beta, still_mesh = beta[:, :1].expand_as(beta), mesh[:, :1].expand_as(mesh)
    expected = beta.diff(dim=1).abs().mean() + (mesh.diff(dim=1).norm(dim=-1) * module.vertex_weight).mean()
    assert module.velocity_loss(still_beta, beta, still_mesh, mesh).item() == pytest.approx(expected.item(), rel=1e-5)


def test_velocity_weight_adds_the_term_to_the_loss(batch):
    torch.manual_seed(0)
    plain = FacialMotionModule(network=SMALL_NETWORK).eval()
    torch.manual_seed(0)
    with_velocity = FacialMotionModule(network=SMALL_NETWORK, velocity_weight=2.0).eval()
    loss, logs = plain.loss(batch)
    loss_velocity, logs_velocity = with_velocity.loss(batch)
    assert "train/velocity" not in logs and logs_velocity["train/velocity"].item() > 0
    assert loss_velocity.item() == pytest.approx(loss.item() + 2.0 * logs_velocity["train/velocity"].item(), rel=1e-5)


def test_checkpoint_round_trip_gives_identical_outputs(batch, tmp_path):
    module = FacialMotionModule(network=SMALL_NETWORK).eval()
    trainer = lightning.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    restored = FacialMotionModule.load_from_checkpoint(tmp_path / "model.ckpt", weights_only=True).eval()
    with torch.no_grad():
        first = module(batch["audio"], batch["alpha"], 25)
        second = restored(batch["audio"], batch["alpha"], 25)
    for name in first:
        assert torch.equal(first[name], second[name]), name
    size = batch["beta"].shape[0]
    assert first["beta"].shape == (size, 25, 52) and first["lip_offsets"].shape == (size, 25, 40, 3)


def test_cli_fit_then_test_on_the_tiny_config(tiny_corpus, tiny_speech_corpus, tmp_path):
    """Fit on the config's two kinds of corpus (one with frames, one speech-only), test on the framed one."""
    common = [
        "--config", str(TINY_CONFIG), "--config", str(CSV_LOGGER_CONFIG),
        "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip
    roots = f"[{tiny_corpus}, {tiny_speech_corpus}]"
    fit = ["--data.root", roots, "--trainer.max_epochs", "2", "--trainer.check_val_every_n_epoch", "1"]
    assert cli_main(["fit", *common, *fit]) == 0
    checkpoint = next(tmp_path.rglob("last.ckpt"))
    assert cli_main(["test", *common, "--data.root", str(tiny_corpus), "--ckpt_path", str(checkpoint)]) == 0
    metrics = logged_metrics(tmp_path)
    for name in (
        "blendshape_mae",
        "lip_vertex_error",
        "lip_vertex_error_pct",
        "mouth_opening_corr",
        "upper_face_dynamics_deviation",
    ):
        assert math.isfinite(metrics[f"val/{name}"]) and math.isfinite(metrics[f"test/{name}"]), name
    assert 0 < metrics["test/lip_vertex_error"] < 5  # cm
    video = sorted(tmp_path.rglob("media/*-mesh_predicted_vs_truth.mp4"))[-1]  # MediaLogger, one per validation
    info = probe_video(video)
    assert info.has_audio and info.num_frames >= 25 and (info.width, info.height) == (512, 256)
    assert video.with_suffix(".png").is_file()


def test_cli_reports_a_missing_corpus_in_one_line(tmp_path, capsys):
    argv = [
        "fit",
        "--config",
        str(TINY_CONFIG),
        "--config",
        str(CSV_LOGGER_CONFIG),
        "--data.root",
        str(tmp_path / "nothing"),
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
    ]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("talkinghead: error:") and "index.json not found" in err[-1]


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(tiny_corpus, tmp_path):
    """The same config trains with gloo DDP on two CPU processes (a child process, as a user would run it).

    One epoch is ⌈(rank 0's share of the training windows) / batch size⌉ steps: the tiny corpus' two training
    clips give each rank one window, so one AdamW step (no weight decay, no warm-up). Starting from the weights
    ``seed_everything`` gives the module, that step moves every trainable weight by ``lr · |g| / (|g| + ε)`` —
    exactly ``lr`` unless its gradient is ~0 (the attention key biases, which softmax ignores) — and no buffer
    but the condition range, which is the union of both ranks' identities (:class:`StageModule`'s all-gather).
    """
    argv = [
        sys.executable, "-m", "talkinghead.lightning.cli", "fit", "--config", str(TINY_CONFIG),
        "--config", str(CSV_LOGGER_CONFIG), "--data.root", str(tiny_corpus),
        "--trainer.strategy", "ddp", "--trainer.devices", "2",
        "--trainer.accelerator", "cpu", "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    config = yaml.safe_load(TINY_CONFIG.read_text())
    data, init_args = config["data"], config["model"]["init_args"]
    windows = ShardWindowDataset(tiny_corpus, "train", fields=data["fields"], window=data["window"])
    steps = math.ceil(len(windows.partition(0, 2, 0, data["num_workers"])) / data["batch_size"])
    checkpoint = torch.load(next(tmp_path.rglob("last.ckpt")), map_location="cpu", weights_only=True)
    assert steps == 1 and checkpoint["global_step"] == steps and checkpoint["epoch"] == 1
    with torch.random.fork_rng(devices=[]):  # the weights the CLI's seed_everything gives the module
        torch.manual_seed(config["seed_everything"])
        initial = FacialMotionModule(**init_args)
    trained, lr = checkpoint["current_model_state"], init_args["lr"]
    assert not init_args.get("weight_decay") and not init_args.get("warmup_steps")  # the plain Adam step above
    assert trained.keys() == initial.state_dict().keys()
    trainable = {name for name, p in initial.named_parameters() if p.requires_grad}
    moves = torch.cat([(trained[name] - p.detach()).abs().flatten() for name, p in initial.named_parameters()])
    assert moves.isfinite().all() and moves.max() <= lr * (1 + 1e-4)
    assert (moves > 0.99 * lr).float().mean() > 0.95  # all but the key biases and a few small gradients
    range_names = {"model.net.condition_range.low", "model.net.condition_range.high"}
    for name, value in initial.state_dict().items():
        if name not in trainable | range_names:
            assert torch.equal(trained[name], value), name
    assert_condition_range_covers_the_training_identities(tiny_corpus, tmp_path)
