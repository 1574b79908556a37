"""Freed memory kept in the heap (talkinghead.heap): blocks allocated again reuse their pages; frames are unchanged."""

import json
import os
import subprocess
import sys

import pytest

ALLOCATE_AGAIN = """
import json, resource, sys
import numpy as np
from talkinghead.heap import retain_freed_memory
retained = sys.argv[1] == "retain" and retain_freed_memory()
def batch():
    alive = []
    for k in range(6):
        alive.append(np.full((25, 256, 256, 3), k, np.float32))
        alive.append(np.ones((25, 256, 256), np.float32))
    del alive[::3]
    alive.append(np.ones((25, 128, 128, 3), np.float32))
    return sum(float(a[-1, -1, -1].sum()) for a in alive)
faults = []
for _ in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    batch()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"retained": retained, "faults": faults}))
"""

RENDER = """
import hashlib, json, sys
from talkinghead.data.synthetic.synth import SynthConfig, make_clip
from talkinghead.heap import retain_freed_memory
retained = sys.argv[1] == "retain" and retain_freed_memory()
frames = make_clip(SynthConfig(clips=1, seconds=1.0, seed=3), 0).frames
print(json.dumps({"retained": retained, "frames": hashlib.sha256(frames.tobytes()).hexdigest()}))
"""


def run(script: str, mode: str) -> dict:
    """Runs ``script`` in a fresh process on one thread: every allocation comes from the main arena, whose
    thresholds ``retain_freed_memory`` sets."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_blocks_of_a_batch_allocated_again_reuse_the_pages_of_the_last_batch():
    """A batch shaped like a render's (six 25 × 256² × 3 float tensors of 19.7 MB, six of 6.6 MB, a third freed
    before the last one is made) allocated four times in a fresh process. By default glibc maps such blocks afresh
    and faults their pages in on every batch (measured 6 907, then 6 029–6 175 each time; numpy asks for huge pages,
    so one fault covers up to 2 MiB); with the heap kept only the first batch faults and the others reuse its pages
    (measured 6 201, then 0, 0, 0). The sequence of allocations is fixed, so the counts are the same on every run.
    A whole clip render (``benchmarks/bench_synth.py``) adds Python's own allocations, whose order varies from
    process to process, and is measured there rather than asserted."""
    retained = run(ALLOCATE_AGAIN, "retain")
    if not retained["retained"]:
        pytest.skip("needs glibc's mallopt")
    default = run(ALLOCATE_AGAIN, "default")
    assert not default["retained"]
    first, *again = default["faults"]
    assert first > 1_000 and min(again) > first / 2, default
    assert retained["faults"][0] > 1_000 and max(retained["faults"][1:]) < first / 100, (default, retained)


def test_a_clip_rendered_with_the_heap_kept_has_the_same_frames():
    """Only where memory comes from changes: a 1-s clip rendered with the heap kept has the bytes of the default."""
    retained = run(RENDER, "retain")
    if not retained["retained"]:
        pytest.skip("needs glibc's mallopt")
    assert run(RENDER, "default")["frames"] == retained["frames"]
