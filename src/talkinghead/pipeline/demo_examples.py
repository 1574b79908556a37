"""The bundled inputs ``make demo`` animates and the web demo offers as its example.

:func:`write_demo_inputs` writes ``OUT_DIR/portrait.png`` (scikit-image's ``astronaut`` photo, the portrait the
embedded corpus was rendered from) and ``OUT_DIR/speech.wav`` (espeak-ng, 16 kHz). The corpus speaks random
sentences drawn from :data:`talkinghead.audio.speech_synthesis.WORDS`; :data:`DEMO_SENTENCE` is not one of them and
most of its words (hello, thanks, watching, demonstration, portrait, talks…) are outside that list, so the video
shows speech the networks never heard.

:func:`example_inputs` finds them for the web demo: ``portrait.png`` and ``speech.wav`` of a folder
(``outputs/demo/`` after ``make demo``), else of a cache folder (``$XDG_CACHE_HOME/talkinghead/demo_inputs``, by
default ``~/.cache/…``), written there once when missing.
"""

import os
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from talkinghead.atomic import atomic_output
from talkinghead.audio.io import SILENCE_PEAK
from talkinghead.audio.speech_synthesis import synthesize
from talkinghead.face.images import load_image_rgb

DEMO_SENTENCE = "Hello there! Thanks for watching this little demonstration of a portrait that talks."
MIN_SPEECH_SECONDS = 0.2
"""The shortest speech :func:`write_demo_inputs` writes: five video frames (espeak-ng says one letter in 0.3 s)."""
PORTRAIT, SPEECH = "portrait.png", "speech.wav"


class ExampleInputsError(RuntimeError):
    """The example inputs could not be written; the message is one line."""


def write_demo_inputs(out_dir: str | Path, text: str = DEMO_SENTENCE) -> tuple[Path, Path]:
    """``OUT_DIR/portrait.png`` and ``OUT_DIR/speech.wav`` of ``text`` (module docstring), written atomically.

    The speech is synthesised first: a ``text`` that is blank, or that espeak-ng says as less than
    :data:`MIN_SPEECH_SECONDS` of sound (only punctuation, say), is a one-line ``ValueError`` and nothing is written.
    """
    if not text.strip():
        raise ValueError("empty")
    speech = synthesize(text, voice="en-us", rate_wpm=150)
    peak = float(np.abs(speech.audio).max(initial=0.0))
    if speech.duration < MIN_SPEECH_SECONDS or peak < SILENCE_PEAK:
        raise ValueError(f"{text!r} has nothing espeak-ng says ({speech.duration:.3f} s of audio, peak {peak:.2g})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    portrait, speech_path = out_dir / PORTRAIT, out_dir / SPEECH
    with atomic_output(portrait) as temp:
        Image.fromarray(load_image_rgb(None)).save(temp, format="PNG")
    with atomic_output(speech_path) as temp:
        sf.write(temp, speech.audio, speech.sample_rate, format="WAV", subtype="PCM_16")
    return portrait, speech_path


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
    try:
        return write_demo_inputs(cache)
    except (OSError, RuntimeError) as error:
        raise ExampleInputsError(f"could not write the example inputs into {str(cache)!r}: {error}") from error
