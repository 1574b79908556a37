"""NCC rendering throughput (rasterize + interpolate, Eq. 9) at 256², as a markdown table.

Renders the 468-vertex / 898-triangle canonical face under random head poses (yaw ±20°, pitch ±12°)
with :class:`talkinghead.render.NCCRenderer`: the torch backend on the CPU with every available thread,
and, when CUDA exists, the torch backend on the GPU and nvdiffrast (if installed). Each row: warm-up,
then timed repeats; frames/s = batch / median time per batch. Target: torch on a 2-core
CPU ≥ 200 frames/s; nvdiffrast ≥ 10 000 frames/s batched.

Run: ``PYTHONPATH=src python benchmarks/bench_rasterizer.py [--repeats 20]``.
"""

import argparse
import math
import os
import statistics
import time

import torch
from machine import describe_machine

from talkinghead.face import builtin_morphable_model
from talkinghead.face.camera import PerspectiveCamera
from talkinghead.face.morphable_model import MorphableModel
from talkinghead.face.pose import apply_pose
from talkinghead.render import NCCRenderer, make_rasterizer


def random_heads(model: MorphableModel, batch: int, seed: int) -> torch.Tensor:
    """World vertices (batch, N, 3) under random yaw ±20°, pitch ±12°, roll ±5°, small translations."""
    generator = torch.Generator().manual_seed(seed)
    limits = torch.tensor([math.radians(12), math.radians(20), math.radians(5), 1.5, 1.5, 3.0])
    pose = (torch.rand(batch, 6, generator=generator) * 2 - 1) * limits
    return apply_pose(model.mean_shape.expand(batch, -1, -1), pose)


def frames_per_second(renderer: NCCRenderer, vertices: torch.Tensor, repeats: int) -> float:
    device = vertices.device

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.no_grad():
        for _ in range(3):
            renderer(vertices)
        synchronize()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            renderer(vertices)
            synchronize()
            times.append(time.perf_counter() - start)
    return vertices.shape[0] / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    model = builtin_morphable_model()
    camera = PerspectiveCamera(image_size=256)
    runs = [("torch", "cpu", (1, 16))]
    if torch.cuda.is_available():
        runs.append(("torch", "cuda", (1, 16, 256)))
        runs.append(("nvdiffrast", "cuda", (1, 16, 256)))

    print(describe_machine())
    print(f"Mesh: {model.num_vertices} vertices, {model.triangles.shape[0]} triangles; 256² output\n")
    print("| backend | device | batch | frames/s | ms / batch |")
    print("|---|---|---:|---:|---:|")
    for backend, device, batches in runs:
        try:
            rasterizer = make_rasterizer(backend, device=device)
        except RuntimeError as error:
            print(f"| {backend} | {device} | – | unavailable: {error} | – |")
            continue
        renderer = NCCRenderer(model, camera, rasterizer).to(device)
        for batch in batches:
            vertices = random_heads(model, batch, seed=batch).to(device)
            fps = frames_per_second(renderer, vertices, args.repeats)
            print(f"| {backend} | {device} | {batch} | {fps:,.0f} | {1000 * batch / fps:.1f} |")


if __name__ == "__main__":
    main()
