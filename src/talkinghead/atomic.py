"""Atomic outputs: write to a temporary name beside the destination, rename over it only on success.

A reader never sees a half-written file, and an interrupted write leaves the previous file (or nothing)
behind. The temporary name is hidden and fixed, ``.NAME.part`` in the destination's folder: the final
``os.replace`` is a rename on one file system, and what a crash leaves is overwritten by the next write of
the same file instead of piling up.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image

from talkinghead.image_tensors import to_uint8


def temporary_path(path: str | os.PathLike) -> Path:
    """The hidden name :func:`atomic_output` writes ``path`` under: ``.NAME.part`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.part")


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield the temporary path of ``path``; it replaces ``path`` when the block ends without an exception
    and is removed otherwise. The caller creates the file (any library, default permissions)."""
    path = Path(path)
    temp = temporary_path(path)
    try:
        yield temp
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """``data`` to ``path`` atomically, flushed to disk before the rename."""
    with atomic_output(path) as temp, open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_png_atomic(image: torch.Tensor, path: str | os.PathLike) -> None:
    """A (C, H, W) image in [0, 1] to ``path`` as PNG, atomically."""
    with atomic_output(path) as temp:
        Image.fromarray(to_uint8(image)).save(temp, format="PNG")
