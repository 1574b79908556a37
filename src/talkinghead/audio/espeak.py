"""ctypes binding to ``libespeak-ng``: samples, phoneme events and a stress-marked transcription.

The layouts and constants are those of espeak-ng's ``speak_lib.h`` (1.51, Debian 12; unchanged in
later releases). The library is initialised with ``AUDIO_OUTPUT_SYNCHRONOUS`` and
``espeakINITIALIZE_PHONEME_EVENTS``: ``espeak_Synth`` then returns after passing every block of int16
samples to the synthesis callback together with its events, among them an ``espeakEVENT_PHONEME`` for
each phoneme (start in ms, mnemonic in ``id.string``). Phoneme events carry no stress in 1.51 (added
in 1.52), so :func:`speak` also returns ``espeak_TextToPhonemes``'s transcription, where ``'`` marks
primary stress before the stressed vowel.

One synthesis per process. The library is process-global state that survives a synthesis (the
pitch-flutter phase, gain control and C ``rand()`` stream carry over, so the same text spoken twice in
one process gives slightly different audio), ``espeak_Initialize`` starts a thread even in synchronous
mode, and ``espeak_Terminate`` hangs in synchronous mode, so the library can be neither reset nor
unloaded safely. :func:`talkinghead.audio.speech_synthesis.synthesize` therefore runs this module as a script in
a fresh interpreter for every utterance (``python -I -S``, about 30 ms; it imports only the standard
library): it reads a JSON request ``{"library", "text", "voice", "rate_wpm", "pitch"}`` on stdin and
writes one JSON line ``{"sample_rate", "events", "transcription"}`` followed by the samples
(native-endian int16) on stdout. Exit status 2 means an unknown voice, 3 a library failure; the
message is on stderr.
"""

import ctypes
import ctypes.util
import functools
import json
import sys
from dataclasses import dataclass

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_DONT_EXIT = 0x8000
EVENT_LIST_TERMINATED = 0
EVENT_PHONEME = 7
POS_CHARACTER = 1
CHARS_UTF8 = 1
PARAMETER_RATE = 1
PARAMETER_PITCH = 3
EE_OK = 0

EXIT_UNKNOWN_VOICE = 2
EXIT_LIBRARY_FAILURE = 3

INSTALL_HINT = "install the Debian package espeak-ng (`apt-get install espeak-ng`, or `make venv`)"


class EventId(ctypes.Union):
    """``espeak_EVENT.id``: a number (word, sentence), a name (mark, play) or a phoneme mnemonic."""

    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class Event(ctypes.Structure):
    """``espeak_EVENT`` (40 bytes on LP64 with ``user_data`` at offset 24 and ``id`` at 32)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", EventId),
    ]


SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(Event))
"""``t_espeak_callback``: ``int callback(short *wav, int numsamples, espeak_EVENT *events)``."""


class UnknownVoiceError(ValueError):
    """espeak-ng has no voice of that name."""


@dataclass
class NativeSpeech:
    """What espeak-ng produced: int16 samples (bytes), their rate, phoneme events and a transcription."""

    samples: bytes
    sample_rate: int
    events: list[tuple[int, str]]
    transcription: list[str]


@functools.cache
def library_name() -> str | None:
    """The loader name of ``libespeak-ng`` (``libespeak-ng.so.1``), or None when it is not installed."""
    return ctypes.util.find_library("espeak-ng")


def speak(library: str, text: str, voice: str, rate_wpm: int, pitch: int) -> NativeSpeech:
    """Synthesise ``text`` in this process (once per process: see the module documentation).

    ``events`` are ``(start_ms, mnemonic)`` of the phoneme events in order; ``transcription`` has one
    string per clause, phonemes separated by spaces, ``'``/``,`` in front of primary/secondary stress.
    """
    lib = ctypes.CDLL(library)
    _declare_signatures(lib)
    sample_rate = lib.espeak_Initialize(
        AUDIO_OUTPUT_SYNCHRONOUS, 0, None, INITIALIZE_PHONEME_EVENTS | INITIALIZE_DONT_EXIT
    )
    if sample_rate <= 0:
        raise RuntimeError(f"espeak_Initialize failed ({sample_rate}): is espeak-ng-data installed? {INSTALL_HINT}")
    if lib.espeak_SetVoiceByName(voice.encode("utf-8")) != EE_OK:
        raise UnknownVoiceError(f"espeak-ng has no voice {voice!r}")
    lib.espeak_SetParameter(PARAMETER_RATE, rate_wpm, 0)
    lib.espeak_SetParameter(PARAMETER_PITCH, pitch, 0)

    blocks: list[bytes] = []
    events: list[tuple[int, str]] = []

    def on_synth(wav, num_samples, event_list):
        if num_samples > 0 and wav:
            blocks.append(ctypes.string_at(wav, num_samples * ctypes.sizeof(ctypes.c_short)))
        index = 0
        while event_list[index].type != EVENT_LIST_TERMINATED:
            event = event_list[index]
            if event.type == EVENT_PHONEME:
                events.append((event.audio_position, event.id.string.decode("utf-8", "replace")))
            index += 1
        return 0

    callback = SynthCallback(on_synth)  # referenced until espeak_Synth has returned
    lib.espeak_SetSynthCallback(callback)
    encoded = text.encode("utf-8")
    status = lib.espeak_Synth(encoded, len(encoded) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
    if status != EE_OK:
        raise RuntimeError(f"espeak_Synth failed with status {status}")
    return NativeSpeech(b"".join(blocks), sample_rate, events, _transcription(lib, encoded))


def _declare_signatures(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
        ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
    ]  # fmt: skip
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p


def _transcription(lib: ctypes.CDLL, encoded: bytes) -> list[str]:
    """``espeak_TextToPhonemes`` clause by clause, phoneme names separated by spaces."""
    buffer = ctypes.create_string_buffer(encoded)
    cursor = ctypes.c_char_p(ctypes.addressof(buffer))
    separator = ord(" ") << 8  # bits 8-23 of phonememode: separator between phoneme names
    clauses = []
    while cursor.value:
        clause = lib.espeak_TextToPhonemes(ctypes.byref(cursor), CHARS_UTF8, separator)
        clauses.append((clause or b"").decode("utf-8", "replace"))
    return clauses


def main() -> int:
    """Serve one request from stdin (see the module documentation)."""
    request = json.loads(sys.stdin.buffer.read())
    try:
        result = speak(request["library"], request["text"], request["voice"], request["rate_wpm"], request["pitch"])
    except UnknownVoiceError as error:
        print(error, file=sys.stderr)
        return EXIT_UNKNOWN_VOICE
    except (OSError, RuntimeError) as error:
        print(error, file=sys.stderr)
        return EXIT_LIBRARY_FAILURE
    header = {"sample_rate": result.sample_rate, "events": result.events, "transcription": result.transcription}
    sys.stdout.buffer.write(json.dumps(header).encode("utf-8") + b"\n" + result.samples)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
