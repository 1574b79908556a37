"""Stage 2 (the mesh-to-video network) on the CPU: ms per frame, FLOPs, fraction of the measured peak, and where
the time goes, as markdown tables.

:class:`MeshToVideo` is built from the ``model.init_args`` of ``motion_vae_tiny.yaml`` and ``motion_vae.yaml``
(paper size) with **random weights** (speed does not depend on training); the reference is scikit-image's
astronaut cropped to the face at 256², driven by random expressions and head poses (fixed seed).

Inference table, per config and batch size B (frames driven by one reference):

* ``before``: the straightforward computation — the reference expanded to the batch and rendered once per
  frame, the mesh flow always rendered and the prior flow where the network uses it
  (:meth:`MeshToVideo.render_inputs` with ``mesh_flow=True`` on the expanded reference, the painted mouth interior
  included), then the motion-VAE and generator;
* ``after``: :meth:`MeshToVideo.synthesize` (the reference rendered once, the flows only where used);
* FLOPs per frame (:func:`flops.stage2_flops_per_frame`: convolutions and matrix products), the GFLOP/s they
  reach in ``after`` and that rate's fraction of the measured float32 matmul peak;
* the profiler's breakdown of ``after`` (torch.profiler, ``record_function`` around each part; each part's
  share of their sum): rasterise (the z-buffer of every mesh), NCC (the rest of the input rendering: colour
  and correspondence interpolation, outer labels, lip heatmaps, pooling), motion-VAE, generator; and the
  reference's parse (MediaPipe, once per portrait, ms per reference).

With ``--inputs-only``: before/after of the input rendering alone (``MotionInputRenderer``), the part these
two changes touch.

Training table (tiny config): the work a training batch of ``--pairs`` pairs drawn from two references does on
the references (as validation pairs a clip's driven frames with its frame 0) — parse and input rendering per
pair (before) or per distinct reference (after, :func:`distinct_references`) — and the discriminator on the real
frames: a no-grad pass for the feature-matching targets plus a pass for its own loss (before) or one pass shared
by both steps (after).

On a shared machine, ``--threads 1 --clock cpu`` times the process's CPU time, which other processes change
far less than the wall clock (equal to it on an idle machine with one thread).

Run: ``PYTHONPATH=src python benchmarks/bench_stage2.py [--configs tiny paper] [--batch-sizes 1 16] [--threads N]
[--clock cpu]``.
"""

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import skimage.data
import skimage.transform
import torch
import yaml
from flops import fraction_of_peak, measured_peak_gflops, stage2_flops_per_frame
from machine import describe_machine
from torch.profiler import ProfilerActivity, profile, record_function

from talkinghead.conventions import CROP_SIZE
from talkinghead.models import MeshToVideo
from talkinghead.models.checkpoints import network_arguments
from talkinghead.models.mesh_to_video import FACE_KEYS
from talkinghead.render.motion_inputs import FLOWS

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"tiny": "motion_vae_tiny", "paper": "motion_vae"}
PARTS = ("rasterise", "inputs", "motion-VAE", "generator")


def init_args(config: str) -> dict:
    return yaml.safe_load((ROOT / "lightning_configs" / f"{CONFIGS[config]}.yaml").read_text())["model"]["init_args"]


def portrait() -> torch.Tensor:
    """The astronaut's face, (1, 3, 256, 256) in [0, 1]."""
    crop = skimage.data.astronaut()[10:310, 80:380]
    image = skimage.transform.resize(crop, (CROP_SIZE, CROP_SIZE), anti_aliasing=True).astype(np.float32)
    return torch.from_numpy(image).permute(2, 0, 1)[None]


def faces(model: MeshToVideo, count: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    limits = torch.tensor([0.15, 0.25, 0.08, 1.0, 1.0, 1.5])
    return {
        "beta": torch.rand(count, 52, generator=generator) * 0.4,
        "pose": (torch.rand(count, 6, generator=generator) * 2 - 1) * limits,
        "lip_offsets": torch.randn(count, model.inputs.model.num_lip_vertices, 3, generator=generator) * 0.05,
    }


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def median_seconds(*fns, repeats: int) -> list[float]:
    """The median time (:data:`clock`) of each callable over ``repeats`` rounds after a warm-up; the callables
    take turns in every round, so a change in the machine's load affects them alike."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, spent in zip(fns, times, strict=True):
            start = clock()
            fn()
            spent.append(clock() - start)
    return [statistics.median(spent) for spent in times]


def labelled(label: str, fn):
    def wrapper(*args, **kwargs):
        with record_function(label):
            return fn(*args, **kwargs)

    return wrapper


def breakdown(model: MeshToVideo, synthesize) -> dict[str, float]:
    """Each part's share of one profiled ``synthesize`` call, as a fraction of the four parts' sum (module
    docstring; shares, not times, because a shared machine's load scales the times)."""
    rasterizer = model.inputs._renderer(model.device).rasterizer
    rasterizer.rasterize = labelled("rasterise", rasterizer.rasterize)
    for label, module in (("inputs", model.inputs), ("motion-VAE", model.motion), ("generator", model.generator)):
        module.forward = labelled(label, module.forward)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        synthesize()
    totals = {event.key: event.cpu_time_total for event in profiler.key_averages()}
    parts = {part: totals.get(part, 0.0) for part in PARTS}
    parts["NCC"] = parts.pop("inputs") - parts["rasterise"]
    total = sum(parts.values())
    del rasterizer.rasterize
    for module in (model.inputs, model.motion, model.generator):
        del module.forward
    return {part: value / total for part, value in parts.items()}


def setup(config: str) -> tuple[MeshToVideo, torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """The network of a config (random weights), the portrait, its face and its parsed outer labels."""
    torch.manual_seed(0)
    model = MeshToVideo(**network_arguments(MeshToVideo, init_args(config))).eval()
    image = portrait()
    reference = {"alpha": torch.zeros(1, model.inputs.model.num_identity), **faces(model, 1, seed=0)}
    reference["pose"].zero_()
    return model, image, reference, model.parse_reference(image, reference)


def input_rows(config: str, batch_sizes: list[int], repeats: int) -> None:
    """Before/after ms per frame of the input rendering alone, the part the reference and prior fixes change."""
    model, _, reference, outer = setup(config)
    flows = ("flow_prior",) if model.flow_prior else ()
    for count in batch_sizes:
        driven = faces(model, count, seed=count)

        def expand(x: torch.Tensor, count: int = count) -> torch.Tensor:
            return x.expand(count, *x.shape[1:])

        def before(driven=driven, expand=expand):
            expanded = {k: expand(reference[k]) for k in FACE_KEYS}
            return model.inputs(expand(reference["alpha"]), expanded, driven, expand(outer), None, FLOWS)

        def after(driven=driven, count=count):
            pairs = torch.zeros(count, dtype=torch.long)
            return model.inputs(reference["alpha"], {k: reference[k] for k in FACE_KEYS}, driven, outer, pairs, flows)

        with torch.no_grad():
            old, new = (seconds / count * 1e3 for seconds in median_seconds(before, after, repeats=repeats))
        print(f"| {config} | {count} | {old:.1f} | {new:.1f} |", flush=True)


def inference_rows(config: str, batch_sizes: list[int], repeats: int, peak: float) -> None:
    model, image, reference, outer = setup(config)
    (parse,) = median_seconds(lambda: model.parse_reference(image, reference), repeats=repeats)
    for count in batch_sizes:
        driven = faces(model, count, seed=count)

        def expand(x: torch.Tensor, count: int = count) -> torch.Tensor:
            return x.expand(count, *x.shape[1:])

        @torch.no_grad()
        def before(driven=driven, expand=expand, count=count):
            faces = {k: expand(reference[k]) for k in FACE_KEYS}
            inputs = model.render_inputs(
                expand(image), expand(reference["alpha"]), faces, driven, expand(outer), mesh_flow=True
            )
            return model(expand(image), inputs, sample=False)

        def after(driven=driven):
            return model.synthesize(image, reference, driven, outer)

        old, new = (seconds / count for seconds in median_seconds(before, after, repeats=repeats))
        flops = stage2_flops_per_frame(model, image, reference, driven, outer)
        parts = breakdown(model, after)
        print(
            f"| {config} | {count} | {old * 1e3:.1f} | {new * 1e3:.1f} | {flops / 1e9:.2f} | {flops / new / 1e9:.1f} | "
            f"{fraction_of_peak(flops, new, peak):.1%} | {parts['rasterise']:.1%} | {parts['NCC']:.1%} | "
            f"{parts['motion-VAE']:.1%} | {parts['generator']:.1%} | {parse * 1e3:.0f} |",
            flush=True,
        )


def training_rows(pairs: int, repeats: int) -> None:
    """Before/after ms per pair of the reference work of a tiny training batch (module docstring)."""
    from talkinghead.lightning import MotionVAEGeneratorModule

    torch.manual_seed(0)
    module = MotionVAEGeneratorModule(**{**init_args("tiny"), "mouth_metric": False})
    model = module.model
    image = portrait()
    owner = torch.arange(pairs) * 2 // pairs  # the first half of the pairs on reference 0, the rest on 1
    references = torch.cat((image, image.flip(-1)))
    reference = faces(model, 2, seed=1)
    batch = {
        "clip_id": [f"clip{i}" for i in owner.tolist()],
        "reference_index": torch.zeros(pairs, dtype=torch.long),
        "reference_frame": references[owner],
        "driven_frame": torch.rand(pairs, 3, CROP_SIZE, CROP_SIZE, generator=torch.Generator().manual_seed(2)),
        "alpha": torch.zeros(pairs, model.inputs.model.num_identity),
        **{f"reference_{key}": value[owner] for key, value in reference.items()},
        **{f"driven_{key}": value for key, value in faces(model, pairs, seed=3).items()},
    }
    faces_of = [{key: batch[f"{role}_{key}"] for key in FACE_KEYS} for role in ("reference", "driven")]

    def per_pair():
        return model.render_inputs(batch["reference_frame"], batch["alpha"], *faces_of)

    def per_reference():
        return module.on_after_batch_transfer(dict(batch), 0)

    discriminator, real = module.criterion.discriminator, batch["driven_frame"]

    def two_passes():
        with torch.no_grad():
            discriminator(real)
        sum(logits.mean() for _, logits in discriminator(real)).backward()

    def one_pass():
        sum(logits.mean() for _, logits in discriminator(real)).backward()

    for label, old, new in (
        ("reference parse + input rendering", per_pair, per_reference),
        ("discriminator on the real frames (forward + backward)", two_passes, one_pass),
    ):
        before, after = (seconds / pairs * 1e3 for seconds in median_seconds(old, new, repeats=repeats))
        print(f"| {label} | {pairs} | {before:.1f} | {after:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=["tiny", "paper"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--pairs", type=int, default=16, help="pairs of the training batch (two references); 0: skip")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads")
    parser.add_argument(
        "--clock", choices=sorted(CLOCKS), default="wall", help="cpu: the process's CPU time (on a shared machine)"
    )
    parser.add_argument("--inputs-only", action="store_true", help="time the input rendering alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global clock
    clock = CLOCKS[args.clock]
    print(describe_machine())
    with open("/proc/loadavg") as loadavg:
        print(f"Load average (1, 5, 15 min) at the start: {' '.join(loadavg.read().split()[:3])}")
    peak = measured_peak_gflops(clock=clock)
    print(f"Measured float32 matmul peak: {peak:.1f} GFLOP/s; times: {args.clock} clock\n")
    if args.inputs_only:
        print("| config | B | input rendering before, ms/frame | after |")
        print("|---|---:|---:|---:|")
        for config in args.configs:
            input_rows(config, args.batch_sizes, args.repeats)
        return
    print("| config | B | before ms/frame | after ms/frame | GFLOP/frame | GFLOP/s | of peak | rasterise | NCC | "
          "motion-VAE | generator | parse, ms/reference |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for config in args.configs:
        inference_rows(config, args.batch_sizes, args.repeats, peak)
    if not args.pairs:
        return
    print("\nTraining batch (tiny), ms per pair:\n")
    print("| work on the references | pairs | before | after |")
    print("|---|---:|---:|---:|")
    training_rows(args.pairs, args.repeats)


if __name__ == "__main__":
    main()
