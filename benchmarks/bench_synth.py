"""Synthesis of the embedded corpus, one process: CPU seconds per clip, framed and speech-only, with glibc's default
heap and with the freed memory kept (``talkinghead.heap``, what ``talkinghead-data synth``'s workers do)::

    PYTHONPATH=src python benchmarks/bench_synth.py [--clips 6] [--speech-clips 40]

Each row runs in a fresh interpreter: clip 0 first (the portrait fit, espeak-ng and the caches warm up), then the
timed clips. User and system seconds are the process's own; espeak-ng's runs are child processes, so its time shows
in the wall-clock column only. Goal: no clip spends a tenth of its CPU time in the kernel.
"""

import argparse
import json
import subprocess
import sys

from machine import describe_machine

MEASURE = """
import json, resource, sys, time
from talkinghead.data.synthetic.synth import SynthConfig, make_clip
from talkinghead.heap import retain_freed_memory
frames, clips, heap = sys.argv[1] == "framed", int(sys.argv[2]), sys.argv[3]
if heap == "kept":
    retain_freed_memory()
config = SynthConfig(clips=clips + 1, frames=frames, seed=0 if frames else 11)
make_clip(config, 0)
start, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for index in range(1, clips + 1):
    make_clip(config, index)
end = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({
    "wall": (time.perf_counter() - wall) / clips,
    "user": (end.ru_utime - start.ru_utime) / clips,
    "system": (end.ru_stime - start.ru_stime) / clips,
    "faults": (end.ru_minflt - start.ru_minflt) / clips,
}))
"""


def measure(kind: str, clips: int, heap: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, kind, str(clips), heap], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=6, help="timed framed clips (4 s each)")
    parser.add_argument("--speech-clips", type=int, default=40, help="timed speech-only clips")
    args = parser.parse_args()
    print(describe_machine())
    print("per clip of 4 s, one process, one torch thread\n")
    print("| clips | heap | wall s | user s | system s | page faults |")
    print("|---|---|---:|---:|---:|---:|")
    for kind, clips in (("framed", args.clips), ("speech-only", args.speech_clips)):
        for heap in ("default", "kept"):
            row = measure(kind, clips, heap)
            print(
                f"| {kind} | {heap} | {row['wall']:.2f} | {row['user']:.2f} | {row['system']:.2f} "
                f"| {row['faults']:,.0f} |"
            )


if __name__ == "__main__":
    main()
