"""Inference speed of ``TalkingHeadPipeline``: seconds per stage, frames/s and peak memory, end to end.

Modules are built from the ``model.init_args`` of the configs with **random weights** (speed does not
depend on training): ``tiny`` = the ``*_tiny.yaml`` configs, ``paper`` = the paper-size configs with the
weight-free mel audio encoder in place of wav2vec 2.0 (whose cost ``bench_audio.py --base`` measures). The
input is scikit-image's astronaut portrait and ``--seconds`` of a synthetic voiced signal. Stages:

* ``portrait``: face detection, crop, landmark fit (once per portrait; the pipeline caches it);
* ``stage 1``: audio features + facial motion (autoregressive, KV cache) + pose mapper, per video frame;
* ``stage 2``: outer-region parse once, then NCC rendering + motion-VAE + generator in batches
  (:meth:`TalkingHeadPipeline.frames`);
* ``encode``: H.264 + AAC muxing (PyAV) of as many frames (the last stage-2 batch repeated);
* ``end to end``: :meth:`TalkingHeadPipeline.generate` as the CLI runs it (portrait prepared fresh);
* ``peak memory``: the process's maximum RSS on the CPU (nothing keeps frames, so it compares across
  ``--seconds``), ``torch.cuda.max_memory_allocated`` on CUDA.

Options: ``--bf16`` (stage 2's networks under ``torch.autocast(bfloat16)``, ``GenerationParams.bf16``; CPU or
CUDA); for CUDA ``--device cuda`` and ``--compile`` (``torch.compile`` of the motion-VAE and generator)::

    PYTHONPATH=src python benchmarks/bench_pipeline.py [--configs tiny paper] [--seconds 10] [--batch-size 16]
"""

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage.data
import soundfile as sf
import torch
import yaml
from machine import describe_machine
from PIL import Image

from talkinghead.conventions import SAMPLE_RATE
from talkinghead.image_tensors import to_uint8
from talkinghead.media import VideoWriter
from talkinghead.models import AudioToMotion, HeadPoseGenerator, MeshToVideo
from talkinghead.models.checkpoints import network_arguments
from talkinghead.pipeline import GenerationParams, TalkingHeadPipeline

ROOT = Path(__file__).resolve().parents[1]


def init_args(name: str) -> dict:
    return yaml.safe_load((ROOT / "lightning_configs" / f"{name}.yaml").read_text())["model"]["init_args"]


def build(size: str, device: str) -> TalkingHeadPipeline:
    """The three inference networks of a config size with random weights (mel audio features: no downloads)."""
    suffix = "_tiny" if size == "tiny" else ""
    facial = {**init_args(f"facial_motion{suffix}"), "audio_encoder": "mel", "audio_encoder_args": None}
    mapper = {**init_args(f"pose_mapper{suffix}"), "audio_encoder": "mel", "audio_encoder_args": None}
    mapper["vqvae_network"] = init_args(f"pose_vqvae{suffix}").get("network")
    stage2 = init_args(f"motion_vae{suffix}")
    return TalkingHeadPipeline(
        AudioToMotion(**network_arguments(AudioToMotion, facial)),
        HeadPoseGenerator(**network_arguments(HeadPoseGenerator, mapper)),
        MeshToVideo(**network_arguments(MeshToVideo, stage2)),
        device=device,
    )


def peak_memory_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run(size: str, args: argparse.Namespace, folder: Path, image: Path, audio: Path) -> list[tuple]:
    torch.manual_seed(0)
    pipeline = build(size, args.device)
    if args.compile:
        pipeline.motion_vae.motion = torch.compile(pipeline.motion_vae.motion)
        pipeline.motion_vae.generator = torch.compile(pipeline.motion_vae.generator)
    params = GenerationParams(batch_size=args.batch_size, bf16=args.bf16)
    rows = []
    start = time.perf_counter()
    prepared = pipeline.prepare_file(image)
    rows.append(("portrait", time.perf_counter() - start, None))
    speech, _ = sf.read(audio, dtype="float32")
    sync(args.device)
    start = time.perf_counter()
    motion = pipeline.motion(prepared, speech, params)
    sync(args.device)
    frames = len(motion["pose"])
    rows.append(("stage 1", time.perf_counter() - start, frames))
    warm_up = {key: value[:2] for key, value in motion.items()}
    next(pipeline.frames(prepared, warm_up, 2, bf16=args.bf16))  # warm-up, compile
    sync(args.device)
    start = time.perf_counter()
    for out in pipeline.frames(prepared, motion, args.batch_size, bf16=args.bf16):
        last = to_uint8(out["frame"])  # frames are not kept: memory must not grow with the length
    sync(args.device)
    rows.append(("stage 2", time.perf_counter() - start, frames))
    start = time.perf_counter()
    with VideoWriter(folder / "encode.mp4", audio=speech) as writer:
        for first in range(0, frames, len(last)):
            writer.write(last[: frames - first])
    rows.append(("encode", time.perf_counter() - start, frames))
    pipeline._prepared_key = None
    start = time.perf_counter()
    pipeline.generate(image, audio, folder / "out.mp4", params, progress=False)
    sync(args.device)
    rows.append(("end to end", time.perf_counter() - start, frames))
    rows.append(("peak memory", peak_memory_mb(args.device), None))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["tiny", "paper"], choices=["tiny", "paper"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    print(describe_machine())
    print(
        f"device {args.device}, bf16 {args.bf16}, compile {args.compile}, {args.seconds:g} s of speech, "
        f"batch {args.batch_size}"
    )
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        image, audio = folder / "portrait.png", folder / "speech.wav"
        Image.fromarray(skimage.data.astronaut()).save(image)
        time_s = np.arange(int(args.seconds * SAMPLE_RATE)) / SAMPLE_RATE
        voice = 0.3 * np.sin(2 * np.pi * 160 * time_s) * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * time_s))
        sf.write(audio, voice.astype(np.float32), SAMPLE_RATE)
        print("| config | stage | seconds | frames/s |\n|---|---|---:|---:|")
        for size in args.configs:
            for stage, value, frames in run(size, args, folder, image, audio):
                if stage == "peak memory":
                    unit = "MiB (CUDA allocated)" if args.device == "cuda" else "MiB (process max RSS)"
                    print(f"| {size} | peak memory | {value:.0f} {unit} | |")
                else:
                    rate = f"{frames / value:.1f}" if frames else ""
                    print(f"| {size} | {stage} | {value:.2f} | {rate} |")


if __name__ == "__main__":
    main()
