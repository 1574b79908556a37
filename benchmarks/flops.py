"""FLOPs of the inference stages and the machine's measured float32 peak, for benchmarks that report how much of
the machine a stage uses.

* :func:`count_flops`: the FLOPs of one call, counted by ``torch.utils.flop_counter.FlopCounterMode`` — matrix
  products, convolutions and attention (2 FLOPs per multiply–add); element-wise work, indexing and the
  rasterizer's scatter count nothing, so the fraction of peak of a stage is that of its dense arithmetic;
* :func:`stage1_flops_per_frame`, :func:`pose_mapper_flops_per_frame`, :func:`stage2_flops_per_frame`: FLOPs per
  video frame of the facial-motion generator (a step of its autoregressive loop, averaged over a clip, with the
  audio encoder), the pose mapper (the same for its code steps, with the VQ-VAE decoder) and the mesh-to-video
  network (:meth:`MeshToVideo.synthesize` of a batch, the reference's parse excluded);
* :func:`measured_peak_gflops`: a timed large float32 matmul on the current torch thread count, the yardstick of
  :func:`fraction_of_peak`.

Import from a script in ``benchmarks/`` (``from flops import count_flops``), as ``machine.py``.
"""

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from talkinghead.conventions import FPS, SAMPLE_RATE


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, Any]:
    """``(FLOPs, result)`` of ``fn(*args, **kwargs)``, run once under ``FlopCounterMode``."""
    with FlopCounterMode(display=False) as counter:
        result = fn(*args, **kwargs)
    return counter.get_total_flops(), result


@contextlib.contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """Parameters without ``requires_grad`` for the block: ``FlopCounterMode``'s module tracker hooks the
    backward of inputs that require gradients, which fails for a parameter passed as an input under
    ``torch.inference_mode`` (the stage-1 generators' start tokens)."""
    flags = [(param, param.requires_grad) for param in module.parameters()]
    for param, _ in flags:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param, flag in flags:
            param.requires_grad_(flag)


def stage1_flops_per_frame(audio_to_motion: torch.nn.Module, alpha: torch.Tensor, seconds: float = 2.0) -> float:
    """FLOPs per frame of :class:`AudioToMotion` (audio encoder + autoregressive facial motion) on ``seconds`` of
    audio (a quiet noise: the count does not depend on the signal); ``alpha`` (1, K)."""
    frames = round(seconds * FPS)
    audio = torch.randn(1, round(seconds * SAMPLE_RATE), generator=torch.Generator().manual_seed(0)) * 0.1
    with frozen(audio_to_motion):
        flops, _ = count_flops(audio_to_motion, audio.to(alpha.device), alpha, frames)
    return flops / frames


def pose_mapper_flops_per_frame(
    head_pose: torch.nn.Module, alpha: torch.Tensor, initial_pose: torch.Tensor, seconds: float = 2.0
) -> float:
    """FLOPs per frame of :class:`HeadPoseGenerator` (audio encoder + pose-code steps + VQ-VAE decoder) on
    ``seconds`` of audio; ``alpha`` (1, K), ``initial_pose`` (1, 6)."""
    frames = round(seconds * FPS)
    audio = torch.randn(1, round(seconds * SAMPLE_RATE), generator=torch.Generator().manual_seed(0)) * 0.1
    with frozen(head_pose):
        flops, _ = count_flops(head_pose, audio.to(alpha.device), alpha, initial_pose, frames)
    return flops / frames


def stage2_flops_per_frame(
    mesh_to_video: torch.nn.Module,
    image: torch.Tensor,
    reference: dict[str, torch.Tensor],
    driven: dict[str, torch.Tensor],
    outer: torch.Tensor,
) -> float:
    """FLOPs per frame of :meth:`MeshToVideo.synthesize` for B driven faces (the batch of ``driven``) with the
    reference's parsed labels ``outer`` given (the parse runs once per portrait)."""
    with frozen(mesh_to_video):
        flops, _ = count_flops(mesh_to_video.synthesize, image, reference, driven, outer)
    return flops / driven["beta"].shape[0]


def measured_peak_gflops(
    size: int = 2048,
    repeats: int = 5,
    device: str = "cpu",
    clock: Callable[[], float] = time.perf_counter,
    dtype: torch.dtype = torch.float32,
) -> float:
    """The best rate (GFLOP/s) of ``repeats`` ``size``² × ``size``² matmuls in ``dtype`` (float32 unless given)
    on the current torch thread count: the machine's practical peak (2·size³ FLOPs each). ``clock``:
    ``time.process_time`` counts the process's CPU time instead of the wall clock (with one thread, a shared
    machine's peak per core)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device, dtype)
    b = torch.randn(size, size, generator=generator).to(device, dtype)
    a @ b  # warm-up

    def synchronize() -> None:
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)

    best = float("inf")
    for _ in range(repeats):
        synchronize()
        start = clock()
        a @ b
        synchronize()
        best = min(best, clock() - start)
    return 2.0 * size**3 / best / 1e9


def fraction_of_peak(flops: float, seconds: float, peak_gflops: float) -> float:
    """The achieved rate ``flops / seconds`` as a fraction of ``peak_gflops``."""
    return flops / seconds / 1e9 / peak_gflops
