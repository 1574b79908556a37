"""The machine line every benchmark prints above its table."""

import os
import platform
from pathlib import Path

import torch

from talkinghead.models.mesh_to_video import native_bfloat16


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def cpu_vectors() -> str:
    """The vector extension torch's CPU kernels use (``AVX2``, ``AVX512``, …) and whether oneDNN computes
    bfloat16 natively (AVX-512 BF16 or AMX) or emulates it: two CPUs of one name can differ in both."""
    return f"{torch.backends.cpu.get_cpu_capability()}, {'native' if native_bfloat16() else 'emulated'} bfloat16"


def describe_machine() -> str:
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (
        f"Machine: {cpu_name()} ({cpu_vectors()}), {os.cpu_count()} cores, {torch.get_num_threads()} torch "
        f"threads, {gpu}; torch {torch.__version__}, Python {platform.python_version()}"
    )
