"""Copy a training run's best checkpoint to a fixed path (``make demo`` → ``outputs/demo/checkpoints/``).

``python tools/export_checkpoint.py RUN_DIR OUT.ckpt``: the newest ``checkpoints/last.ckpt``
under the run folder (``logs/version_N/`` with the CSV logger, ``<project>/<run id>/`` with W&B), written by
``ModelCheckpoint(save_last=True)``, records which checkpoint was best on the monitored metric; that file is
copied to ``OUT.ckpt`` atomically (temp file + rename). A run without a monitored best (no validation
happened) exports ``last.ckpt`` itself.
"""

import argparse
import shutil
import sys
from pathlib import Path

from talkinghead.atomic import atomic_output
from talkinghead.cli_conventions import add_common_arguments, configure_logging, verbosity
from talkinghead.lightning.checkpointing import newest_last_checkpoint
from talkinghead.models.checkpoints import UnreadableCheckpointError, read_checkpoint


def best_checkpoint(run_dir: str | Path) -> Path:
    """The best checkpoint of the newest training run under ``run_dir`` (module docstring)."""
    last = newest_last_checkpoint(run_dir)
    state = read_checkpoint(last)
    for callback in state.get("callbacks", {}).values():
        best = callback.get("best_model_path") if isinstance(callback, dict) else None
        if best and (last.parent / Path(best).name).is_file():
            return last.parent / Path(best).name
    return last


def export(run_dir: str | Path, out: str | Path) -> Path:
    out = Path(out)
    if out.is_dir():
        raise IsADirectoryError(f"{out}: is a folder, not a checkpoint file to write")
    source = best_checkpoint(run_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as temp:
        shutil.copyfile(source, temp)
    return source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Copy a run's best checkpoint to OUT (atomically).")
    parser.add_argument("run_dir", help="the trainer's default_root_dir, e.g. outputs/runs/facial_motion_tiny")
    parser.add_argument("out", help="destination .ckpt")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(verbosity(args))
    try:
        source = export(args.run_dir, args.out)
    except (OSError, UnreadableCheckpointError) as error:  # OSError: also OUT below a file or not writable
        print(f"export_checkpoint: error: {error}", file=sys.stderr)
        return 2
    print(f"{args.out} ← {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
