"""Inputs of ``make demo``: the bundled portrait and a sentence the embedded corpus never says.

``python -m talkinghead.pipeline.demo_inputs OUT_DIR`` writes ``OUT_DIR/portrait.png`` (scikit-image's
``astronaut`` photo, the portrait the corpus was rendered from) and ``OUT_DIR/speech.wav`` (espeak-ng,
16 kHz). The corpus speaks random sentences drawn from :data:`talkinghead.data.speech.WORDS`; the demo
sentence is not one of them and most of its words (hello, thanks, watching, demonstration, portrait, talks…)
are outside that list, so the video shows speech the networks never heard.
"""

import argparse
import sys
from pathlib import Path

import soundfile as sf
from PIL import Image

from talkinghead.atomic import atomic_output
from talkinghead.data.portrait import load_image_rgb
from talkinghead.data.speech import synthesize

DEMO_SENTENCE = "Hello there! Thanks for watching this little demonstration of a portrait that talks."


def write_demo_inputs(out_dir: str | Path, text: str = DEMO_SENTENCE) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    portrait, speech_path = out_dir / "portrait.png", out_dir / "speech.wav"
    with atomic_output(portrait) as temp:
        Image.fromarray(load_image_rgb(None)).save(temp, format="PNG")
    speech = synthesize(text, voice="en-us", rate_wpm=150)
    with atomic_output(speech_path) as temp:
        sf.write(temp, speech.audio, speech.sample_rate, format="WAV", subtype="PCM_16")
    return portrait, speech_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the demo portrait and speech.")
    parser.add_argument("out_dir")
    parser.add_argument("--text", default=DEMO_SENTENCE, help="what the portrait says")
    args = parser.parse_args(argv)
    portrait, speech = write_demo_inputs(args.out_dir, args.text)
    print(f"wrote {portrait} and {speech}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
