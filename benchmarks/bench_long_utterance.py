"""Drift of stage 1 over a long utterance: motion statistics of the last 10 s against the first 10 s.

The tiny stage-1 networks (``*_tiny.yaml``) are trained for a few minutes each on a corpus (``--corpus``, e.g.
``talkinghead-data synth --out DIR --clips 24 --seconds 4``; checkpoints are kept in ``--checkpoints`` and
reused), then drive ``--seconds`` of espeak-ng speech (random sentences, one voice) twice: with the configs'
``max_context`` (sliding windows, cross-faded pose decoding) and with ``max_context = None`` everywhere (the
whole utterance in context). Per channel of β (52) and of the pose (6), over the channels that move
(first-10-s std ≥ 1e-3): the ratio std(last 10 s) / std(first 10 s) and the mean shift
|mean(last) − mean(first)| / std(first); the table gives their median and extremes and the largest self-attention
key/value cache. Two lines follow: how far the two runs differ over the last 10 s (the pose is sampled at
temperature 1, so the runs diverge once one code differs), and the pose decoder alone, windowed and in one
pass (a causal decoder: causally, its band kept in both runs), against ground-truth tracks of the corpus's
head-pose model for the same speech::

    PYTHONPATH=src python benchmarks/bench_long_utterance.py --corpus DIR [--checkpoints DIR] [--minutes 3]
"""

import argparse
from datetime import timedelta
from pathlib import Path

import lightning
import numpy as np
import torch
import yaml
from machine import describe_machine

from talkinghead.audio.speech_synthesis import random_sentence, synthesize
from talkinghead.conventions import FPS, SAMPLE_RATE
from talkinghead.data.datamodule import TalkingHeadDataModule
from talkinghead.data.synthetic.motion_synthesis import head_pose_trajectory
from talkinghead.lightning import FacialMotionModule, PoseMapperModule, PoseVQVAEModule
from talkinghead.models import AudioToMotion, HeadPoseGenerator, load_network
from talkinghead.models.attention import DecoderCache

ROOT = Path(__file__).resolve().parents[1]


def config(name: str) -> dict:
    return yaml.safe_load((ROOT / "lightning_configs" / f"{name}_tiny.yaml").read_text())


def train(module: lightning.LightningModule, name: str, corpus: Path, minutes: float, path: Path) -> None:
    """Fit ``module`` for ``minutes`` on the tiny config's windows and save its checkpoint to ``path``."""
    data = config(name)["data"]
    datamodule = TalkingHeadDataModule(str(corpus), fields=data["fields"], window=data["window"], batch_size=8)
    trainer = lightning.Trainer(
        accelerator="cpu",
        max_epochs=-1,
        max_time=timedelta(minutes=minutes),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule)
    trainer.save_checkpoint(path)


def checkpoints(corpus: Path, folder: Path, minutes: float) -> dict[str, Path]:
    """The three tiny stage-1 checkpoints in ``folder``, trained here when missing."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.ckpt" for name in ("facial_motion", "pose_vqvae", "pose_mapper")}
    if not paths["facial_motion"].is_file():
        module = FacialMotionModule(**config("facial_motion")["model"]["init_args"])
        train(module, "facial_motion", corpus, minutes, paths["facial_motion"])
    if not paths["pose_vqvae"].is_file():
        module = PoseVQVAEModule(**config("pose_vqvae")["model"]["init_args"])
        train(module, "pose_vqvae", corpus, minutes / 2, paths["pose_vqvae"])
    if not paths["pose_mapper"].is_file():
        init_args = {**config("pose_mapper")["model"]["init_args"], "vqvae_checkpoint": str(paths["pose_vqvae"])}
        train(PoseMapperModule(**init_args), "pose_mapper", corpus, minutes, paths["pose_mapper"])
    return paths


def speech(seconds: float, seed: int = 0) -> torch.Tensor:
    """``seconds`` of espeak-ng sentences (16 kHz), (1, S)."""
    rng = np.random.default_rng(seed)
    pieces, total = [], 0
    while total < seconds * SAMPLE_RATE:
        audio = synthesize(random_sentence(rng), "en-us").audio
        pieces += [audio, np.zeros(int(rng.integers(2000, 8000)), np.float32)]
        total += len(audio) + len(pieces[-1])
    return torch.from_numpy(np.concatenate(pieces)[: int(seconds * SAMPLE_RATE)])[None]


def first_window(corpus: Path) -> dict:
    """α and P⁰ of the corpus's first validation window."""
    data = TalkingHeadDataModule(str(corpus), fields=["alpha", "pose"], window=48, batch_size=1)
    data.setup("fit")
    return next(iter(data.val_dataloader()))


def unbounded(facial: AudioToMotion, head: HeadPoseGenerator) -> None:
    """Every stage-1 context set to the whole utterance (``max_context = None``), but a causal pose decoder's: its
    band of ``max_context`` frames is how it decodes at all (:meth:`PoseVQVAE.transform`), not a bound on a cache."""
    facial.net.max_context = head.net.max_context = None
    if not head.vqvae.causal:
        head.vqvae.max_context = None
    for decoder in [branch.decoder for branch in facial.net.branches.values()] + [head.net.decoder]:
        decoder.max_context = None


def drift(values: torch.Tensor, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, C) → std ratio last/first ``frames`` and mean shift / first std, over the moving channels."""
    first, last = values[:frames], values[-frames:]
    moving = first.std(0) >= 1e-3
    ratio = last.std(0)[moving] / first.std(0)[moving]
    shift = (last.mean(0) - first.mean(0)).abs()[moving] / first.std(0)[moving]
    return ratio.numpy(), shift.numpy()


def generate(paths: dict[str, Path], audio: torch.Tensor, window: dict, bounded: bool) -> tuple[dict, int]:
    """β (T, 52) and the relative pose (T, 6) of the tiny networks, and the longest key/value cache."""
    facial = load_network(AudioToMotion, paths["facial_motion"])
    head = load_network(HeadPoseGenerator, paths["pose_mapper"])
    if not bounded:
        unbounded(facial, head)
    frames = audio.shape[1] * FPS // SAMPLE_RATE
    longest = [0]
    update = DecoderCache.update

    def spy(cache: DecoderCache, positions: torch.Tensor, layers: list) -> None:
        update(cache, positions, layers)
        longest[0] = max(longest[0], len(cache))

    DecoderCache.update = spy
    try:
        with torch.no_grad():
            beta = facial(audio, window["alpha"], frames)["beta"][0]
            generator = torch.Generator().manual_seed(0)
            pose = head(audio, window["alpha"], window["pose"][:, 0], frames, 1.0, None, generator)[0]
    finally:
        DecoderCache.update = update
    return {"β": beta, "pose": pose - window["pose"][0, 0]}, longest[0]


def rows(motion: dict, longest: int, label: str) -> list[str]:
    lines = []
    for name, values in motion.items():
        ratio, shift = drift(values, 10 * FPS)
        lines.append(
            f"| {label} | {name} | {np.median(ratio):.2f} [{ratio.min():.2f}, {ratio.max():.2f}] "
            f"| {np.median(shift):.2f} [max {shift.max():.2f}] | {longest} |"
        )
    return lines


def difference(bounded: dict, whole: dict, frames: int) -> str:
    """RMS difference of the two runs over the last ``frames``, in units of the first frames' std, per motion."""
    parts = []
    for name in bounded:
        scale = bounded[name][:frames].std(0).clamp(min=1e-3)
        rms = ((bounded[name][-frames:] - whole[name][-frames:]) / scale).square().mean().sqrt()
        parts.append(f"{name} {rms:.3f}")
    return "RMS difference bounded − None over the last 10 s (/ first-10-s std): " + ", ".join(parts)


def decoder_error(path: Path, audio: torch.Tensor, seeds: int = 3) -> str:
    """The pose VQ-VAE alone on ``seeds`` ground-truth tracks of the corpus's head-pose model for the same speech
    (P − P⁰, encoded per training window): normalised MSE of the windowed and the one-pass decoding, or of the
    causal decoding for a causal decoder (whose band is its architecture: it has no one-pass form)."""
    vqvae = load_network(HeadPoseGenerator, path).vqvae
    frames, window = audio.shape[1] * FPS // SAMPLE_RATE, vqvae.max_context
    modes = (("causal", window),) if vqvae.causal else (("windowed", window), ("one pass", None))
    errors = {name: [] for name, _ in modes}
    for seed in range(seeds):
        track = head_pose_trajectory(audio[0].numpy(), SAMPLE_RATE, frames, FPS, np.random.default_rng(seed))
        target = torch.from_numpy(track - track[:1])[None]
        with torch.no_grad():
            parts = [vqvae.encode(target[:, s : s + window]) for s in range(0, frames, window)]
            codes, _ = vqvae.quantizer.quantize(torch.cat(parts, 1))
            for name, context in modes:
                vqvae.max_context = context
                errors[name].append(vqvae.normalized_error(vqvae.decode(codes, frames), target).item())
    text = ", ".join(f"{name} {np.mean(values):.3f}" for name, values in errors.items())
    return f"pose decoder on {seeds} ground-truth tracks of the corpus's head-pose model, normalised MSE: {text}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--checkpoints", type=Path, default=Path("outputs/bench_long_utterance"))
    parser.add_argument("--minutes", type=float, default=3.0, help="training time of each network")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads while generating (frame by frame)")
    args = parser.parse_args()
    print(describe_machine())
    torch.manual_seed(0)
    paths = checkpoints(args.corpus, args.checkpoints, args.minutes)
    audio, window = speech(args.seconds), first_window(args.corpus)
    torch.set_num_threads(args.threads)
    print(f"{args.seconds:g} s of espeak-ng speech; last 10 s against the first 10 s (median [range] over channels)")
    print("| context | motion | std ratio last/first | mean shift / std | longest KV cache |\n|---|---|---|---|---:|")
    runs = {label: generate(paths, audio, window, label == "max_context") for label in ("max_context", "None")}
    for label, (motion, longest) in runs.items():
        print("\n".join(rows(motion, longest, label)))
    print(difference(runs["max_context"][0], runs["None"][0], 10 * FPS))
    print(decoder_error(paths["pose_mapper"], audio))


if __name__ == "__main__":
    main()
