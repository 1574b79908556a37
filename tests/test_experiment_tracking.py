"""W&B experiment tracking: offline runs without network, the login rule, and the CSV alternative."""

from pathlib import Path

import pytest
import yaml

from talkinghead.lightning.cli import import_class
from talkinghead.lightning.cli import main as cli_main
from talkinghead.lightning.loggers import wandb_logged_in
from tests.helpers import load_tool

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
        assert not {"MediaLogger", "ModelCheckpoint"} & listed, path.name
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


def test_tiny_fit_writes_an_offline_wandb_run_and_media(tiny_corpus, tmp_path):
    """No network (WANDB_MODE=offline from conftest): the run is stored under save_dir/wandb/offline-run-*."""
    argv = [
        "fit", "--config", str(ROOT / "lightning_configs" / "pose_vqvae_tiny.yaml"), "--data.root", str(tiny_corpus),
        "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--trainer.max_epochs", "2", "--trainer.check_val_every_n_epoch", "1", "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip
    assert cli_main(argv) == 0
    saved = yaml.safe_load(next(tmp_path.rglob("config.yaml")).read_text())["trainer"]
    assert saved["logger"]["init_args"]["name"] == "PoseVQVAEModule-pose_vqvae_tiny"
    names = [callback["class_path"].rsplit(".", 1)[-1] for callback in saved["callbacks"]]
    assert names == ["MediaLogger", "ModelCheckpoint", "RNGState"]
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
