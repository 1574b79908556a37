"""Inputs of ``make demo``: the bundled portrait and a sentence the embedded corpus never says.

:func:`write_demo_inputs` writes ``OUT_DIR/portrait.png`` (scikit-image's
``astronaut`` photo, the portrait the corpus was rendered from) and ``OUT_DIR/speech.wav`` (espeak-ng,
16 kHz). The corpus speaks random sentences drawn from :data:`talkinghead.data.synthetic.speech.WORDS`; the demo
sentence is not one of them and most of its words (hello, thanks, watching, demonstration, portrait, talks…)
are outside that list, so the video shows speech the networks never heard.
"""

from pathlib import Path

import soundfile as sf
from PIL import Image

from talkinghead.atomic import atomic_output
from talkinghead.data.synthetic.speech import synthesize
from talkinghead.face.images import load_image_rgb

DEMO_SENTENCE = "Hello there! Thanks for watching this little demonstration of a portrait that talks."


def write_demo_inputs(out_dir: str | Path, text: str = DEMO_SENTENCE) -> tuple[Path, Path]:
    """``OUT_DIR/portrait.png`` and ``OUT_DIR/speech.wav`` of ``text`` (module docstring), written atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    portrait, speech_path = out_dir / "portrait.png", out_dir / "speech.wav"
    with atomic_output(portrait) as temp:
        Image.fromarray(load_image_rgb(None)).save(temp, format="PNG")
    speech = synthesize(text, voice="en-us", rate_wpm=150)
    with atomic_output(speech_path) as temp:
        sf.write(temp, speech.audio, speech.sample_rate, format="WAV", subtype="PCM_16")
    return portrait, speech_path
