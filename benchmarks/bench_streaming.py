"""Streaming generation speed: first-frame latency, sustained real-time factor and memory, per config and pose.

Networks are built from the ``model.init_args`` of the configs with **random weights** (speed does not depend on
training; :func:`bench_pipeline.build`): ``tiny`` = ``*_tiny.yaml``, ``paper`` = the paper-size configs with the
weight-free mel encoder in place of wav2vec 2.0; ``--checkpoints DIR`` loads the tiny row's networks from trained
checkpoints instead (e.g. ``outputs/demo/checkpoints``). The portrait (scikit-image's astronaut, or
``--portrait FILE``) is prepared beforehand; the speech is ``--seconds`` of the tests' speech-like signal
(``tests/helpers.speech_like``) or of a recording (``--speech FILE``), pushed in 40-ms chunks through
:meth:`TalkingHeadPipeline.open_stream`, frames kept only as long as a batch.

Columns:

* ``lookahead``: the session's stated latency (:attr:`StreamSession.latency`, ms of audio a frame waits for);
* ``first frame``: wall-clock ms from pushing the first chunk to getting the first frame, chunks pushed as fast
  as they are processed (``--realtime``: as a live source delivers them, :func:`~talkinghead.pipeline.streaming.
  live_chunks`, so the lookahead is included and a session that falls behind gets what arrived meanwhile at once);
* ``real-time factor``: processing time / speech duration over the whole stream (< 1: faster than real time);
* ``RSS``: the process's resident memory (``/proc/self/statm``) sampled after every chunk — the peak during the
  stream and its growth from the first second to the end (CUDA: ``torch.cuda.max_memory_allocated``).

A second table splits the stream's processing time per stage — stage 1 (audio features + facial motion), the
generated head pose (pose mapper + VQ-VAE decoder), stage 2 (input rendering + motion-VAE + generator) — per frame,
next to the stage's FLOPs per frame (:mod:`flops`: convolutions and matrix products) and the floor they set on
this machine: FLOPs / the measured float32 matmul peak (:func:`flops.measured_peak_gflops`, same thread count;
with ``--bf16`` stage 2's floor is the bfloat16 matmul peak).
``× floor`` = time / floor (1 = the stage runs at the matmul peak), ``of peak`` its inverse.

``--minutes M``: a memory-flatness run instead (tiny, generated pose): M minutes of speech (the signal repeated)
pushed as fast as possible, RSS printed every ``--every`` seconds of speech and at the start/middle/end.

``--bf16``: stage 2's networks in bfloat16 (``GenerationParams.bf16``), on the CPU or CUDA. CUDA options as in
``bench_pipeline.py`` (``--device cuda``, ``--compile``); on a machine without a GPU ``--device cuda`` is
refused::

    PYTHONPATH=src python benchmarks/bench_streaming.py [--configs tiny paper] [--seconds 8] [--minutes 10]
        [--checkpoints outputs/demo/checkpoints --speech speech.wav --portrait portrait.jpg]
"""

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import skimage.data
import torch
from bench_pipeline import build
from flops import measured_peak_gflops, pose_mapper_flops_per_frame, stage1_flops_per_frame, stage2_flops_per_frame
from machine import describe_machine

from talkinghead.audio.io import load_audio
from talkinghead.conventions import FRAME_SAMPLES, SAMPLE_RATE
from talkinghead.face.images import load_image_rgb
from talkinghead.pipeline import GenerationParams, TalkingHeadPipeline
from talkinghead.pipeline.streaming import CHUNK_MS, live_chunks

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' speech-like signal
from tests.helpers import speech_like  # noqa: E402

CHUNK = FRAME_SAMPLES  # the warm-up's and --minutes' chunks: one frame's audio, CHUNK_MS long


def rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(size: str, pose: str, args: argparse.Namespace, prepared_cache: dict) -> dict:
    torch.manual_seed(0)
    if args.checkpoints and size == "tiny":
        pipeline = TalkingHeadPipeline.from_checkpoints(args.checkpoints, device=args.device)
    else:
        pipeline = build(size, args.device)
    if args.compile:
        pipeline.motion_vae.motion = torch.compile(pipeline.motion_vae.motion)
        pipeline.motion_vae.generator = torch.compile(pipeline.motion_vae.generator)
    if size not in prepared_cache:
        image = load_image_rgb(args.portrait) if args.portrait else skimage.data.astronaut()
        prepared_cache[size] = pipeline.prepare(image)
    prepared = prepared_cache[size]
    params = GenerationParams(
        pose=pose, seed=0, batch_size=args.batch_size, stream_batch=args.stream_batch, bf16=args.bf16
    )
    if args.speech:
        speech = load_audio(args.speech)[: int(args.seconds * SAMPLE_RATE)]
        if len(speech) < int(args.seconds * SAMPLE_RATE):
            sys.exit(f"bench_streaming.py: {args.speech} is shorter than --seconds {args.seconds:g}")
    else:
        speech = speech_like(args.seconds, seed=0)
    warm = pipeline.open_stream(prepared, params)  # warm-up (and compilation): one second
    for start in range(0, SAMPLE_RATE, CHUNK):
        warm.push(speech[start : start + CHUNK])
    warm.close()
    session = pipeline.open_stream(prepared, params)
    stages = {"stage 1": 0.0, "head pose": 0.0, "stage 2": 0.0}
    timed(session.motion.face, "update", stages, "stage 1", args.device)
    timed(session.motion.pose, "update", stages, "head pose", args.device)
    timed(session, "_render", stages, "stage 2", args.device)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss, first, first_push, busy, frames = [], None, None, 0.0, 0
    for samples in itertools.chain(live_chunks(speech, CHUNK_MS, args.realtime), [None]):
        tick = time.perf_counter()
        first_push = tick if first_push is None else first_push
        batches = session.close() if samples is None else session.push(samples)
        if args.device == "cuda":
            torch.cuda.synchronize()
        busy += time.perf_counter() - tick
        frames += sum(len(batch) for batch in batches)
        if batches and first is None:
            first = time.perf_counter() - first_push
        rss.append(rss_mib())
    memory = torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else max(rss)
    return {
        "lookahead": session.latency.total,
        "first": 1000 * first,
        "rtf": busy / args.seconds,
        "memory": memory,
        "growth": rss[-1] - rss[min(25, len(rss) - 1)],
        "frames": frames,
        "stages": {name: seconds / frames for name, seconds in stages.items()},
    }


def timed(owner: object, name: str, totals: dict[str, float], stage: str, device: str) -> None:
    """Wrap the bound method ``owner.name`` so that its wall-clock time adds to ``totals[stage]``."""
    method = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        result = method(*args, **kwargs)
        if device == "cuda":
            torch.cuda.synchronize()
        totals[stage] += time.perf_counter() - start
        return result

    setattr(owner, name, wrapper)


def stage_flops(size: str, device: str, prepared) -> dict[str, float]:
    """FLOPs per frame of each stage of a config (random weights; the astronaut portrait)."""
    pipeline = build(size, device)
    portrait = prepared.portrait
    alpha, pose = portrait.alpha[None].to(device), portrait.pose[None].to(device)
    reference = pipeline.stage2_reference(prepared)
    generator = torch.Generator().manual_seed(0)
    count = 4
    driven = {
        "beta": torch.rand(count, 52, generator=generator).to(device) * 0.3,
        "pose": pose.expand(count, -1),
        "lip_offsets": torch.zeros(count, *reference.reference["lip_offsets"].shape[1:], device=device),
    }
    return {
        "stage 1": stage1_flops_per_frame(pipeline.facial_motion, alpha),
        "head pose": pose_mapper_flops_per_frame(pipeline.pose_mapper, alpha, pose),
        "stage 2": stage2_flops_per_frame(
            pipeline.motion_vae, reference.image, reference.reference, driven, reference.outer
        ),
    }


def flatness(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    pipeline = build("tiny", args.device)
    session = pipeline.open_stream(pipeline.prepare(skimage.data.astronaut()), GenerationParams(pose="generated"))
    speech = speech_like(8.0, seed=0)
    total = int(args.minutes * 60 * SAMPLE_RATE) // CHUNK
    samples, begin = [], time.perf_counter()
    print("| speech (s) | RSS (MiB) | wall (s) |\n|---:|---:|---:|")
    for index in range(total):
        start = (index * CHUNK) % (len(speech) - CHUNK)
        session.push(speech[start : start + CHUNK])
        seconds = (index + 1) * CHUNK / SAMPLE_RATE
        if index % round(args.every * SAMPLE_RATE / CHUNK) == 0 or index == total - 1:
            samples.append((seconds, rss_mib()))
            print(f"| {seconds:.0f} | {samples[-1][1]:.0f} | {time.perf_counter() - begin:.0f} |", flush=True)
    session.close()
    picks = {"start": samples[0], "middle": samples[len(samples) // 2], "end": samples[-1]}
    print(", ".join(f"{name} {value:.0f} MiB at {second:.0f} s" for name, (second, value) in picks.items()))
    print(f"buffers at the end: {session.buffer_sizes()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["tiny", "paper"], choices=["tiny", "paper"])
    parser.add_argument("--poses", nargs="+", default=["still", "generated"], choices=["still", "generated"])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--stream-batch", type=int, default=GenerationParams.stream_batch)
    parser.add_argument("--realtime", action="store_true", help="push the chunks at wall-clock pace")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--bf16", action="store_true", help="stage 2 in bfloat16 (GenerationParams.bf16)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--checkpoints", type=Path, help="trained tiny networks (a make-demo checkpoint folder)")
    parser.add_argument("--speech", type=Path, help="a recording instead of the speech-like signal")
    parser.add_argument("--portrait", type=Path, help="a portrait instead of the astronaut")
    parser.add_argument("--minutes", type=float, help="memory-flatness run of this many minutes of speech")
    parser.add_argument("--every", type=float, default=30.0, help="seconds of speech between RSS samples")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device on this machine")
    print(describe_machine())
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.minutes:
        flatness(args)
        return
    print(
        f"device {args.device}, bf16 {args.bf16}, compile {args.compile}, {args.seconds:g} s of speech in 40-ms "
        f"chunks{' at wall-clock pace' if args.realtime else ''}, stage-2 batch {args.stream_batch}–{args.batch_size}"
    )
    memory = "peak CUDA MiB" if args.device == "cuda" else "peak RSS MiB"
    print(f"| config | pose | lookahead ms | first frame ms | real-time factor | {memory} | RSS growth MiB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    prepared: dict = {}
    rows = {}
    for size in args.configs:
        for pose in args.poses:
            row = rows[size, pose] = run(size, pose, args, prepared)
            print(
                f"| {size} | {pose} | {row['lookahead']:.0f} | {row['first']:.0f} | {row['rtf']:.2f} | "
                f"{row['memory']:.0f} | {row['growth']:+.0f} |",
                flush=True,
            )
    peak = measured_peak_gflops(device=args.device)
    peaks = {"stage 2": measured_peak_gflops(device=args.device, dtype=torch.bfloat16)} if args.bf16 else {}
    bf16_peak = f", bfloat16 {peaks['stage 2']:.1f} (stage 2's floor)" if args.bf16 else ""
    print(f"\nper stage, per frame of the streams above; float32 matmul peak {peak:.1f} GFLOP/s{bf16_peak}")
    print("| config | pose | stage | GFLOP/frame | ms/frame | floor ms/frame | × floor | of peak |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for size in args.configs:
        flops = stage_flops(size, args.device, prepared[size])
        for pose in args.poses:
            for stage, seconds in rows[size, pose]["stages"].items():
                if stage == "head pose" and pose != "generated":
                    continue
                floor = flops[stage] / (peaks.get(stage, peak) * 1e9)
                print(
                    f"| {size} | {pose} | {stage} | {flops[stage] / 1e9:.3f} | {1000 * seconds:.1f} | "
                    f"{1000 * floor:.2f} | {seconds / floor:.1f} | {floor / seconds:.1%} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
