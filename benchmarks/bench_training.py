"""Training throughput per stage on this machine, one process and two-process DDP (gloo on the CPU).

Each configuration runs ``talkinghead fit`` twice, for ``--short`` and ``--long`` optimizer steps, without
validation or checkpoints; the difference of the two wall times is the time of ``long − short`` steps, so process
start-up, data verification and model construction cancel out. Items/s = steps/s × batch size × processes.

    .venv/bin/python benchmarks/bench_training.py [--configs facial_motion_tiny ...] [--devices 1 2]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from machine import describe_machine

ROOT = Path(__file__).resolve().parents[1]
STAGE1 = ("facial_motion_tiny", "pose_vqvae_tiny", "pose_mapper_tiny")


def fit_seconds(config: str, devices: int, steps: int, corpus: str, extra: list[str], folder: Path) -> float:
    command = [
        sys.executable, "-m", "talkinghead.lightning.cli", "fit",
        "--config", str(ROOT / "lightning_configs" / f"{config}.yaml"),
        "--config", str(ROOT / "lightning_configs" / "loggers" / "csv.yaml"), "--data.root", corpus,
        "--trainer.logger.init_args.save_dir", str(folder), "--trainer.default_root_dir", str(folder),
        "--trainer.max_steps", str(steps), "--trainer.max_epochs", "-1", "--trainer.limit_val_batches", "0",
        "--trainer.num_sanity_val_steps", "0", "--trainer.enable_checkpointing", "false",
        "--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu", "--trainer.devices", str(devices),
        "--trainer.callbacks", "[]", "--data.num_workers", "0", *extra,
    ]  # fmt: skip
    if devices > 1:
        command += ["--trainer.strategy", "ddp"]
    start = time.perf_counter()
    threads = str(max(1, os.cpu_count() // devices))  # the cores shared out between the processes
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": threads})
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(ROOT / "outputs" / "demo" / "corpus"))
    parser.add_argument("--configs", nargs="+", default=[*STAGE1, "motion_vae_tiny"])
    parser.add_argument("--devices", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--short", type=int, default=5)
    parser.add_argument("--long", type=int, default=205, help="steps of the long run (stage 1)")
    parser.add_argument("--long-stage2", type=int, default=25, help="steps of the long run (stage 2)")
    parser.add_argument("--vqvae", default=str(ROOT / "outputs" / "demo" / "checkpoints" / "pose_vqvae.ckpt"))
    args = parser.parse_args()
    print(describe_machine())
    print("| config | processes | batch | steps/s | items/s |\n|---|---:|---:|---:|---:|")
    for config in args.configs:
        extra = ["--model.init_args.vqvae_checkpoint", args.vqvae] if config.startswith("pose_mapper") else []
        batch = yaml.safe_load((ROOT / "lightning_configs" / f"{config}.yaml").read_text())["data"]["batch_size"]
        steps = args.long_stage2 if config.startswith("motion_vae") else args.long
        for devices in args.devices:
            with tempfile.TemporaryDirectory() as temp:
                short = fit_seconds(config, devices, args.short, args.corpus, extra, Path(temp) / "a")
                long = fit_seconds(config, devices, steps, args.corpus, extra, Path(temp) / "b")
            rate = (steps - args.short) / (long - short)
            print(f"| {config} | {devices} | {batch} | {rate:.2f} | {rate * batch * devices:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
