"""Speech with exact phoneme timings from espeak-ng: the audio and phoneme track of the embedded corpus.

The embedded corpus needs speech whose phoneme timings are known rather than estimated from the audio.
``libespeak-ng`` reports them itself through its synthesis callback (see :mod:`talkinghead.audio.espeak`,
the ctypes binding); the command line's ``--pho`` output would need MBROLA voices, which Debian does not
package.

:func:`synthesize` runs the binding in a fresh interpreter per utterance (about 30 ms): the library keeps
synthesis state between calls that no API resets, so only a fresh process gives the same audio for the
same arguments. It follows that calls are independent, thread-safe and work the same in worker
processes (``spawn`` or ``fork``).

Stress: espeak-ng 1.51 puts no stress into phoneme events, so it is read from the library's own
transcription of the text (``'`` before a vowel with primary stress) and carried over to the events by
aligning the two phoneme sequences. :attr:`PhonemeEvent.stressed` is primary stress.

Audio: espeak-ng speaks at 22050 Hz; :func:`synthesize` returns 16 kHz mono float32 in [-1, 1],
resampled with :func:`talkinghead.audio.io.resample`.
"""

import difflib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talkinghead.audio import espeak
from talkinghead.audio.io import resample
from talkinghead.conventions import SAMPLE_RATE

"""Sample rate of :attr:`Speech.audio` (Hz)."""

VOICES = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-us+f3", "en+m3", "en-us+f5", "en+m7")
"""English voices of Debian's ``espeak-ng-data`` (language, optionally ``+variant``), all verified to load
and to sound different from one another."""

RATE_RANGE = (80, 450)
"""Speaking rates espeak-ng accepts (words per minute)."""

WORDS = tuple(
    """
    about above across act after afternoon again air all almost alone always animal answer apple arm
    around art ask away baby back bad bag ball bank be bear beautiful because bed before begin behind
    believe best better big bird black blue boat body book both bottom box boy brave bread break bridge
    bring brother brown build busy but buy by call calm camp car care carry cat chair change cheap
    check child choose city class clean clear close cloud coat coffee cold come cool cover cup cut dark
    day deep do doctor dog door down draw dream drink drive during each early earth easy eat edge egg
    eight eleven empty end enough evening even every eye face fact fall family famous far farm fast
    father favorite fear feel feet few field fifty fill find fine fire first fish five floor flower fly
    follow food foot for forest forget forward four free fresh friend from front fruit full fun future
    garden gate give glass go gold good great green group grow hair half hand happy hard have head hear
    heart heavy help here high hill hold home hope horse hot house how huge idea if important inside
    island job join juice jump just keep key kind king kitchen knife know lake lamp large last late
    laugh leave left letter level life light like line lip little live long look loud love low lunch
    machine make man many map market maybe me meet middle milk mind minute mirror money month moon more
    morning most mother mountain mouth move movie much music my name native near never new next nice
    night nine no noise noon north nothing now number ocean of off often oil old on once one only open
    orange other our out over own page paper park part party pass pay people perfect person phone photo
    picture piece place plan play please pocket point poor possible power pretty problem pull push put
    queen question quick quiet rain read ready red remember rich right river road rock roof room rose
    round rule run safe same save school sea seat second see seven shape share she ship shoe short show
    side simple sing sister sit six sky sleep slow small smile snow so soft some something song soon
    sound south speak spring square stand star start stay step stone stop story street strong stuff
    summer sun sure sweet table take talk tall teacher tell ten than thank that the then there these
    they thing think this those thought three through time today together tomorrow too top travel tree
    true try turn two under until up use valley value van very view village visit voice vote wait walk
    wall want warm wash watch water wave way we weather week well west what wheel when where which
    while white who why wife will wind window winter with woman wonder wood word work world would write
    yellow yes you young
    """.split()
)
"""Built-in word list for :func:`random_sentence`: about 500 common English words covering every viseme,
among them labiodentals (five, very, laugh), rounded vowels (blue, food, go, thought) and bilabials
(map, baby, people)."""

_ESPEAK_SCRIPT = Path(espeak.__file__)
_ESPEAK_TIMEOUT_S = 120.0
_STRESS_MARKS = "',%="


@dataclass(frozen=True)
class PhonemeEvent:
    """One phoneme as espeak-ng spoke it: mnemonic, start and end (s), primary stress.

    ``end`` is the next phoneme's start (the end of the audio for the last one). Pauses are phonemes
    too: their mnemonics start with ``_``.
    """

    symbol: str
    start: float
    end: float
    stressed: bool = False

    @property
    def is_pause(self) -> bool:
        return self.symbol.startswith("_")


@dataclass
class Speech:
    """Synthesised speech: 16 kHz mono float32 audio and its phoneme timings."""

    text: str
    voice: str
    audio: np.ndarray
    phonemes: list[PhonemeEvent]
    sample_rate: int = SAMPLE_RATE

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


def synthesize(text: str, voice: str = "en-us", rate_wpm: int = 160, pitch: int = 50) -> Speech:
    """Speak ``text`` with espeak-ng; same arguments, same result (bit for bit).

    ``voice`` is an espeak-ng voice name (see :data:`VOICES`), ``rate_wpm`` the speaking rate in words per
    minute (80-450), ``pitch`` the base pitch (0-100, 50 is the voice's normal).
    """
    if not text.strip():
        raise ValueError("text to synthesise is empty")
    if not RATE_RANGE[0] <= rate_wpm <= RATE_RANGE[1]:
        raise ValueError(f"rate_wpm must be in {RATE_RANGE}, got {rate_wpm}")
    if not 0 <= pitch <= 100:
        raise ValueError(f"pitch must be in [0, 100], got {pitch}")
    native = _run_espeak(text, voice, rate_wpm, pitch)
    samples = np.frombuffer(native["samples"], dtype=np.int16).astype(np.float32) / 32768.0
    audio = resample(samples, native["sample_rate"], SAMPLE_RATE)
    audio = np.clip(audio, -1.0, 1.0)  # resampling can overshoot full scale by a little
    stress = [_split_stress(token) for clause in native["transcription"] for token in clause.split()]
    events = [(ms / 1000.0, symbol) for ms, symbol in native["events"]]
    return Speech(text, voice, audio, _phoneme_events(events, stress, len(audio) / SAMPLE_RATE))


def random_sentence(rng: np.random.Generator, min_words: int = 4, max_words: int = 12) -> str:
    """A random sentence of ``min_words``-``max_words`` words from :data:`WORDS`.

    Longer sentences get a comma (a short pause) with probability 0.3; one in five is a question.
    """
    if not 1 <= min_words <= max_words:
        raise ValueError(f"need 1 <= min_words <= max_words, got {min_words}, {max_words}")
    count = int(rng.integers(min_words, max_words + 1))
    words = [WORDS[i] for i in rng.integers(0, len(WORDS), size=count)]
    if count >= 6 and rng.random() < 0.3:
        cut = int(rng.integers(2, count - 2))
        words[cut] += ","
    end = "?" if rng.random() < 0.2 else "."
    return " ".join(words).capitalize() + end


def _run_espeak(text: str, voice: str, rate_wpm: int, pitch: int) -> dict:
    """Run :mod:`talkinghead.audio.espeak` in a fresh interpreter; its header fields plus ``samples``."""
    library = espeak.library_name()
    if library is None:
        raise RuntimeError(f"libespeak-ng is not installed; {espeak.INSTALL_HINT}")
    request = {"library": library, "text": text, "voice": voice, "rate_wpm": rate_wpm, "pitch": pitch}
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(_ESPEAK_SCRIPT)],
        input=json.dumps(request).encode("utf-8"),
        capture_output=True,
        timeout=_ESPEAK_TIMEOUT_S,
        check=False,
    )
    message = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode == espeak.EXIT_UNKNOWN_VOICE:
        raise ValueError(message)
    if done.returncode != 0:
        raise RuntimeError(f"espeak-ng synthesis failed (exit status {done.returncode}): {message}")
    header, _, samples = done.stdout.partition(b"\n")
    return {**json.loads(header), "samples": samples}


def _split_stress(token: str) -> tuple[str, bool]:
    """A transcription token (``'aI``) → mnemonic and whether it carries primary stress."""
    symbol = token.lstrip(_STRESS_MARKS)
    return symbol, "'" in token[: len(token) - len(symbol)]


def _phoneme_events(
    events: list[tuple[float, str]], stress: list[tuple[str, bool]], duration: float
) -> list[PhonemeEvent]:
    """Timed phoneme events with stress aligned from ``stress``; zero-length events are dropped."""
    spoken = [i for i, (_, symbol) in enumerate(events) if not symbol.startswith("_")]
    stressed = np.zeros(len(events), bool)
    matcher = difflib.SequenceMatcher(None, [events[i][1] for i in spoken], [s for s, _ in stress], autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            stressed[spoken[block.a + k]] = stress[block.b + k][1]
    starts = [start for start, _ in events] + [duration]
    return [
        PhonemeEvent(symbol, start, starts[i + 1], bool(stressed[i]))
        for i, (start, symbol) in enumerate(events)
        if starts[i + 1] > start
    ]
