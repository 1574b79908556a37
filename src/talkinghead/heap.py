"""Keep freed memory in the process heap (glibc), for CPU loops that allocate the same large tensors again and again.

By default glibc's ``malloc`` serves a block of 128 KiB or more (a threshold it raises, at most to 32 MiB, as it
sees such blocks freed) with its own ``mmap`` and returns it to the system on ``free``, and it gives the top of the
heap back once more than 128 KiB of it is free. A loop that allocates and frees a batch of frames on every
iteration then pays a page fault for every 4 KiB page it touches, every time: a clip of the embedded corpus'
frames (tensors of 25 × 256² pixels, up to 20 MB each) faults 335 000 times and spends 1.1 of its 5.4 s in the
kernel (``benchmarks/bench_synth.py``; 0.06 s with the memory kept). :func:`retain_freed_memory` fixes the
thresholds (the ``mallopt`` calls behind glibc's ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` and
``MALLOC_TOP_PAD_`` variables), so such blocks come from the heap and stay mapped after ``free``: the process keeps
its peak heap instead of returning it. Results are unaffected (only where memory comes from changes). Elsewhere
than glibc it does nothing.
"""

import ctypes
import ctypes.util
import functools

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3

MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's largest: blocks up to 32 MiB come from the heap
TRIM_THRESHOLD_BYTES = 1 << 30  # free heap kept before any is returned to the system
TOP_PAD_BYTES = 256 << 20  # extra heap reserved whenever the heap grows


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") else None


def retain_freed_memory() -> bool:
    """Set the thresholds above for this process; ``True`` if the C library took them (glibc), else ``False``."""
    libc = _libc()
    if libc is None:
        return False
    settings = (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
        (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
        (M_TOP_PAD, TOP_PAD_BYTES),
    )
    return all(libc.mallopt(parameter, value) == 1 for parameter, value in settings)
