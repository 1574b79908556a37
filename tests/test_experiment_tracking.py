"""W&B experiment tracking: offline runs without network, the login rule, and the CSV alternative."""

from pathlib import Path

import pytest
import yaml

from talkinghead.lightning.cli import import_class
from talkinghead.lightning.cli import main as cli_main
from talkinghead.lightning.loggers import WandbLogger, wandb_logged_in
from tests.helpers import SHORT_CLIP_WINDOW, load_tool

export_checkpoint = load_tool("export_checkpoint")
best_checkpoint, export = export_checkpoint.best_checkpoint, export_checkpoint.export

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "lightning_configs").glob("*.yaml"))


def test_configs_share_the_logger_and_callbacks_and_every_module_names_its_monitor():
    """The trainer blocks every config shares are set once by the CLI, not repeated in the files."""
    import yaml

    assert len(CONFIGS) >= 8
    for path in CONFIGS:
        config = yaml.safe_load(path.read_text())
        assert not {"logger", "default_root_dir"} & set(config["trainer"]), path.name
        listed = {callback["class_path"].rsplit(".", 1)[-1] for callback in config["trainer"].get("callbacks", [])}
        assert not {"MediaLogger", "ModelCheckpoint", "BestAndLastCheckpoint"} & listed, path.name
        module = import_class(config["model"]["class_path"])
        metric, mode = module.MONITOR
        assert metric.startswith("val/") and mode in ("min", "max"), path.name


def test_login_rule(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert not wandb_logged_in()
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert wandb_logged_in()
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert not wandb_logged_in()


def test_wandb_is_not_given_the_deprecated_anonymous_setting_unless_it_is_asked_for(monkeypatch, tmp_path):
    """Lightning would pass ``anonymous=None``, which wandb reports at every run as a setting without effect."""
    import wandb

    class StartedError(Exception):
        """Raised in place of starting the run, once its arguments are recorded."""

    calls = []

    def init(**kwargs):
        calls.append(kwargs)
        raise StartedError

    monkeypatch.setattr(wandb, "init", init)
    for extra in ({}, {"anonymous": False}, {"anonymous": True}):
        with pytest.raises(StartedError):
            _ = WandbLogger(save_dir=str(tmp_path), offline=True, **extra).experiment
    assert ["anonymous" in call for call in calls] == [False, False, True] and calls[2]["anonymous"] == "allow"
    assert [call["dir"] for call in calls] == [str(tmp_path)] * 3


def test_tiny_fit_writes_an_offline_wandb_run_and_media(tiny_corpus, tmp_path):
    """No network (WANDB_MODE=offline from conftest): the run is stored under save_dir/wandb/offline-run-*."""
    argv = [
        "fit", "--config", str(ROOT / "lightning_configs" / "pose_vqvae_tiny.yaml"), "--data.root", str(tiny_corpus),
        "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--trainer.max_epochs", "2", "--trainer.check_val_every_n_epoch", "1", "--trainer.enable_progress_bar", "false",
        *SHORT_CLIP_WINDOW,
    ]  # fmt: skip
    assert cli_main(argv) == 0
    saved = yaml.safe_load(next(tmp_path.rglob("config.yaml")).read_text())["trainer"]
    assert saved["logger"]["init_args"]["name"] == "PoseVQVAEModule-pose_vqvae_tiny"
    names = [callback["class_path"].rsplit(".", 1)[-1] for callback in saved["callbacks"]]
    assert names == ["MediaLogger", "BestAndLastCheckpoint", "RNGState"]
    assert saved["callbacks"][1]["init_args"]["monitor"] == "val/angle_error_deg"
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and next(runs[0].glob("run-*.wandb")).stat().st_size > 0
    assert len(list(tmp_path.rglob("media/*-codebook_usage.png"))) == 2  # one per validation
    best = best_checkpoint(tmp_path)
    assert best.name != "last.ckpt" and best.parent.name == "checkpoints"
    assert export(tmp_path, tmp_path / "exported" / "pose_vqvae.ckpt") == best
    assert (tmp_path / "exported" / "pose_vqvae.ckpt").read_bytes() == best.read_bytes()
    with pytest.raises(FileNotFoundError, match="train first"):
        best_checkpoint(tmp_path / "nothing")


def test_export_checkpoint_names_an_unreadable_last_checkpoint_and_a_folder_as_out(tmp_path, capsys):
    """A ``last.ckpt`` of text, and an existing folder as OUT: one line each, exit 2, nothing written (tracebacks
    before)."""
    last = tmp_path / "run" / "logs" / "version_0" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_text("not a checkpoint\n")
    out = tmp_path / "exported.ckpt"
    assert export_checkpoint.main([str(tmp_path / "run"), str(out)]) == 2
    assert capsys.readouterr().err == (
        f"export_checkpoint: error: {last}: not a readable checkpoint (UnpicklingError)\n"
    )
    assert export_checkpoint.main([str(tmp_path / "run"), str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"export_checkpoint: error: {tmp_path}: is a folder, not a checkpoint file to write\n"
    )
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_progress_arithmetic():
    """The time left extrapolates the fraction done of whichever limit ends the fit first, capped by max_time."""
    from talkinghead.lightning.progress import clock, fraction_done, time_left

    assert [clock(s) for s in (0, 59.6, 61, 3599, 3600, 7322)] == [
        "0:00",
        "1:00",
        "1:01",
        "59:59",
        "1:00:00",
        "2:02:02",
    ]
    assert fraction_done(10, 40, 70, -1) == 0.25  # max_steps -1: no step limit
    assert fraction_done(10, 40, 500, 1000) == 0.5  # the step limit ends this fit first
    assert fraction_done(3, None, 0, -1) is None
    assert time_left(60, 0.25, None) == 180
    assert time_left(60, 0.25, 100) == 100  # max_time leaves less than the extrapolation
    assert time_left(60, None, 30) == 30 and time_left(60, None, None) is None and time_left(60, 0.0, None) is None
    assert time_left(60, 0.5, -5) == 0


def test_a_fit_to_a_log_file_prints_lines_of_progress(tiny_corpus, tmp_path, capsys):
    """Standard output not a terminal (pytest captures it): ``fit`` gets LineProgress instead of the live bar;
    at interval 0+ it prints a line after every batch, numbered by step, and a last line when the fit ends."""
    argv = [
        "fit", "--config", str(ROOT / "lightning_configs" / "pose_vqvae_tiny.yaml"), "--data.root", str(tiny_corpus),
        "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--trainer.max_epochs", "3", "--trainer.check_val_every_n_epoch", "3", *SHORT_CLIP_WINDOW,
    ]  # fmt: skip
    assert cli_main(argv) == 0
    saved = yaml.safe_load(next(tmp_path.rglob("config.yaml")).read_text())["trainer"]["callbacks"]
    assert [c["class_path"].rsplit(".", 1)[-1] for c in saved][-1] == "LineProgress"
    capsys.readouterr()
    interval = ["--trainer.callbacks+=talkinghead.lightning.progress.LineProgress", "--trainer.callbacks.interval=1e-9"]
    assert cli_main([*argv, *interval]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("run: epoch")]
    steps = [int(line.split(", step ")[1].split(",")[0]) for line in lines]
    assert steps[:-1] == list(range(1, len(lines))) and steps[-1] == steps[-2] and steps[-1] % 3 == 0
    assert lines[-1].startswith(f"run: epoch 3/3, step {steps[-1]}, ") and ", done · " in lines[-1]
    assert lines[0].startswith("run: epoch 1/3, step 1, ") and "train/" in lines[0]
    assert all(" left · " in line for line in lines[:-1])  # the loader's length gives the first epoch's share
    listed = yaml.safe_load(next(tmp_path.rglob("config.yaml")).read_text())["trainer"]["callbacks"]
    assert [c["init_args"]["interval"] for c in listed if c["class_path"].endswith("LineProgress")] == [1e-9]
    assert cli_main([*argv, "--trainer.enable_progress_bar", "false"]) == 0
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith("run: epoch")]


def _callbacks(monkeypatch, tmp_path, config: str, *extra: str) -> list:
    """The callbacks a ``talkinghead fit`` would train with (the command stops before training)."""
    from talkinghead.lightning.cli import TalkingHeadCLI

    built = []
    monkeypatch.setattr(TalkingHeadCLI, "_run_subcommand", lambda cli, name: built.extend(cli.trainer.callbacks))
    argv = ["fit", "--config", str(ROOT / "lightning_configs" / config), "--data.root", str(tmp_path)]
    argv += ["--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false", *extra]
    assert cli_main(argv) == 0
    return built


@pytest.mark.parametrize("config", ["pose_vqvae_tiny.yaml", "facial_motion_tiny.yaml"])
def test_callbacks_given_on_the_command_line_are_kept_as_given(monkeypatch, tmp_path, config):
    """With a config that lists callbacks (facial_motion_tiny: EMA) or none (pose_vqvae_tiny): a MediaLogger given
    replaces the shared one (one, every 5 validations); a step checkpoint keeps the best checkpoint on the module's
    metric beside it (the run's only last.ckpt is the step one's); a checkpoint's own file name stays; checkpointing
    turned off drops the shared checkpoint."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from talkinghead.lightning.checkpointing import BestAndLastCheckpoint
    from talkinghead.lightning.media import MediaLogger

    media = [
        "--trainer.callbacks+=talkinghead.lightning.media.MediaLogger",
        "--trainer.callbacks.every_n_validations",
        "5",
    ]
    loggers = [c for c in _callbacks(monkeypatch, tmp_path, config, *media) if isinstance(c, MediaLogger)]
    assert [logger.every_n_validations for logger in loggers] == [5]

    step = ["--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.every_n_train_steps", "500"]
    step += ["--trainer.callbacks.save_last", "true", "--trainer.callbacks.filename", "step-{step}"]
    saved = [c for c in _callbacks(monkeypatch, tmp_path, config, *step) if isinstance(c, ModelCheckpoint)]
    assert [(type(c), c.filename, bool(c.save_last)) for c in saved] == [
        (ModelCheckpoint, "step-{step}", True),
        (BestAndLastCheckpoint, "{epoch}-{val/angle_error_deg:.3f}" if "pose" in config else
         "{epoch}-{val/lip_vertex_error:.3f}", False),
    ]  # fmt: skip

    off = _callbacks(monkeypatch, tmp_path, config, "--trainer.enable_checkpointing", "false")
    assert not [c for c in off if isinstance(c, ModelCheckpoint)] and any(isinstance(c, MediaLogger) for c in off)
