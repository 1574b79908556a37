"""Resuming a fit: stopped mid-epoch and resumed from its last checkpoint, a run trains on the batches and reaches
the weights of an uninterrupted run (the tiny facial-motion config: dropout and scheduled sampling draw from the
global RNG at every step)."""

from pathlib import Path

import pytest
import torch

from talkinghead.lightning.cli import main as cli_main
from tests.batch_recorder import recorded
from tests.helpers import CSV_LOGGER_CONFIG

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "lightning_configs" / "facial_motion_tiny.yaml"
STEPS, STOP = 9, 6  # epochs of 4 steps (2 clips × 4 windows of 10 frames, batches of 2): both mid-epoch


def fit(corpus: Path, folder: Path, steps: int, num_workers: int, *extra: str) -> Path:
    """``talkinghead fit`` of the tiny config for ``steps`` steps, keeping ``last.ckpt`` at every step; returns the
    run's newest ``last.ckpt``."""
    argv = [
        "fit", "--config", str(TINY_CONFIG), "--config", str(CSV_LOGGER_CONFIG), "--data.root", str(corpus),
        "--trainer.default_root_dir", str(folder), "--trainer.logger.init_args.save_dir", str(folder),
        "--trainer.enable_progress_bar", "false", "--trainer.max_steps", str(steps),
        "--data.window", "10", "--data.batch_size", "2", "--data.num_workers", str(num_workers),
        "--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.every_n_train_steps", "1",
        "--trainer.callbacks.save_last", "true",
        "--trainer.callbacks+=tests.batch_recorder.BatchRecorder", "--trainer.callbacks.path", str(folder / "batches"),
        *extra,
    ]  # fmt: skip
    assert cli_main(argv) == 0
    return sorted(folder.rglob("last*.ckpt"), key=lambda path: path.parent.parent.name)[-1]


@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_fit_resumed_mid_epoch_sees_the_batches_and_reaches_the_weights_of_an_uninterrupted_fit(
    tiny_corpus, tmp_path, num_workers
):
    """Run A trains STEPS steps; run B stops after STOP (a step checkpoint's last.ckpt) and resumes with --ckpt_path
    (the file, or ``last``: the newest under the root directory, which a new logger version would not find).
    The weights are bitwise equal: the same CPU operations run in the same order on the same batches and draws."""
    uninterrupted = torch.load(fit(tiny_corpus, tmp_path / "a", STEPS, num_workers), weights_only=True)
    stopped = fit(tiny_corpus, tmp_path / "b", STOP, num_workers)
    state = torch.load(stopped, weights_only=True)
    assert state["global_step"] == STOP and state["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 1, "batches": STOP - 4}
    ]
    assert [path.name for path in stopped.parent.glob("last*")] == ["last.ckpt"]  # one last.ckpt, at the step
    resumed = torch.load(
        fit(tiny_corpus, tmp_path / "b", STEPS, num_workers, "--ckpt_path", "last" if num_workers else str(stopped)),
        weights_only=True,
    )
    assert resumed["global_step"] == uninterrupted["global_step"] == STEPS
    batches = recorded(tmp_path / "a" / "batches")
    assert recorded(tmp_path / "b" / "batches") == batches  # steps 0 … STOP − 1, then STOP … STEPS − 1 resumed
    assert [row[1] for row in batches] == [0] * 4 + [1] * 4 + [2]
    weights, resumed_weights = uninterrupted["state_dict"], resumed["state_dict"]
    assert weights.keys() == resumed_weights.keys()
    different = [name for name in weights if not torch.equal(weights[name], resumed_weights[name])]
    assert not different, different


def test_last_checkpoint_holds_the_newest_validation_when_the_metric_stops_improving(tiny_corpus, tmp_path):
    """With a learning rate of 0 the validation metric never improves after the first validation: the best
    checkpoint stays the first epoch's, while ``last.ckpt`` (what ``--ckpt_path`` resumes from) holds the third
    (Lightning's own ModelCheckpoint would leave it at the first, and a resumed fit would redo two epochs). The
    condition range is off: the range it records grows as training meets more identities, which changes how
    validation clamps theirs even when the weights stay put."""
    argv = [
        "fit", "--config", str(TINY_CONFIG), "--config", str(CSV_LOGGER_CONFIG), "--data.root", str(tiny_corpus),
        "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false", "--trainer.max_epochs", "3", "--trainer.check_val_every_n_epoch", "1",
        "--data.window", "10", "--data.batch_size", "2", "--model.init_args.lr", "0.0",
        "--model.init_args.network.condition_range", "false",
    ]  # fmt: skip
    assert cli_main(argv) == 0
    folder = next(tmp_path.rglob("checkpoints"))
    assert sorted(path.name.split("-")[0] for path in folder.glob("*.ckpt")) == ["0", "last.ckpt"]
    last = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 2 and last["global_step"] == 3 * 4  # 4 steps an epoch (module constants above)


def test_resuming_the_last_checkpoint_of_a_run_that_has_none_is_one_line(tiny_corpus, tmp_path, capsys):
    argv = ["fit", "--config", str(TINY_CONFIG), "--config", str(CSV_LOGGER_CONFIG), "--data.root", str(tiny_corpus)]
    argv += ["--trainer.default_root_dir", str(tmp_path / "run"), "--ckpt_path", "last"]
    assert cli_main(argv) == 2
    assert capsys.readouterr().err == (
        f"talkinghead: error: no checkpoints/last.ckpt under {tmp_path / 'run'}: nothing to resume, train first\n"
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not a readable checkpoint (EOFError)"),
        (b"not a checkpoint\n" * 100, "not a readable checkpoint (UnpicklingError)"),
        (bytes(3000), "not a readable checkpoint (RuntimeError)"),
        (b"trainer:\n  max_epochs: 3\n", "not a readable checkpoint (IndexError)"),
        (b"hello", "not a readable checkpoint (KeyError)"),
        ("tensor", "not a checkpoint (it holds a Tensor, not a dict)"),
    ],
    ids=["empty", "text", "zeros", "a config", "hello", "a tensor"],
)
def test_a_ckpt_path_that_is_no_checkpoint_is_one_line(tiny_corpus, tmp_path, capsys, content, reason):
    """Files that are no checkpoint (empty, text, zero bytes, a YAML config, a saved tensor), given as ``--ckpt_path``:
    one line naming the file and exit 2, before anything is built (torch's unpickling traceback ended the run)."""
    bad = tmp_path / "bad.ckpt"
    if content == "tensor":
        torch.save(torch.zeros(3), bad)
    else:
        bad.write_bytes(content)
    argv = ["fit", "--config", str(TINY_CONFIG), "--config", str(CSV_LOGGER_CONFIG), "--data.root", str(tiny_corpus)]
    argv += ["--trainer.default_root_dir", str(tmp_path / "run"), "--ckpt_path", str(bad)]
    assert cli_main(argv) == 2
    assert capsys.readouterr().err == f"talkinghead: error: --ckpt_path {bad}: {reason}\n"
    assert not (tmp_path / "run").exists()
