"""The example inputs of the web demo: the portrait and the speech that ``make demo`` animates.

They are ``portrait.png`` and ``speech.wav`` of ``outputs/demo/`` when ``make demo`` has written them there;
otherwise they are written once into a cache folder (``$XDG_CACHE_HOME/talkinghead/demo_inputs``, by default
``~/.cache/…``) by :func:`talkinghead.data.synthetic.demo_inputs.write_demo_inputs`: scikit-image's astronaut photo
and an espeak-ng sentence. That function belongs to the data layer, which inference never imports, so it runs in a
child process, as ``tools/demo_inputs.py`` does for ``make demo``.
"""

import os
import subprocess
import sys
from pathlib import Path

PORTRAIT, SPEECH = "portrait.png", "speech.wav"

_WRITE_DEMO_INPUTS = (
    "import sys; from talkinghead.data.synthetic.demo_inputs import write_demo_inputs; write_demo_inputs(sys.argv[1])"
)


class ExampleInputsError(RuntimeError):
    """The example inputs could not be written; the message is one line."""


def default_cache() -> Path:
    """Where generated example inputs are kept between runs."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "talkinghead" / "demo_inputs"


def example_inputs(folder: str | Path, cache: str | Path | None = None) -> tuple[Path, Path]:
    """``(portrait, speech)`` from ``folder`` or ``cache`` if one holds both, else written into ``cache`` first."""
    cache = Path(cache) if cache is not None else default_cache()
    for candidate in (Path(folder), cache):
        portrait, speech = candidate / PORTRAIT, candidate / SPEECH
        if portrait.is_file() and speech.is_file():
            return portrait, speech
    result = subprocess.run(
        [sys.executable, "-c", _WRITE_DEMO_INPUTS, str(cache)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise ExampleInputsError(f"could not write the example inputs into {str(cache)!r}: {last}")
    return cache / PORTRAIT, cache / SPEECH
