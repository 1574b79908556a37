"""espeak-ng speech synthesis through ctypes: audio format, determinism, phoneme timings and stress."""

import ctypes
import itertools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest
import torch

from talkinghead.audio import espeak
from talkinghead.audio.speech_synthesis import VOICES, WORDS, PhonemeEvent, random_sentence, synthesize
from talkinghead.data.synthetic.visemes import VISEMES, visemes_of

needs_espeak = pytest.mark.skipif(
    espeak.library_name() is None,
    reason="libespeak-ng is not installed (apt-get install espeak-ng, or `make venv`)",
)


def test_event_struct_matches_speak_lib_h():
    """Offsets of espeak_EVENT as gcc lays it out from speak_lib.h (LP64: x86-64, aarch64)."""
    if ctypes.sizeof(ctypes.c_void_p) != 8:
        pytest.skip("layout recorded for 64-bit platforms")
    event = espeak.Event
    offsets = {name: getattr(event, name).offset for name, _ in event._fields_}
    assert offsets == {
        "type": 0,
        "unique_identifier": 4,
        "text_position": 8,
        "length": 12,
        "audio_position": 16,
        "sample": 20,
        "user_data": 24,
        "id": 32,
    }
    assert ctypes.sizeof(event) == 40 and ctypes.sizeof(espeak.EventId) == 8


def test_random_sentence_is_deterministic_and_uses_the_word_list():
    first = [random_sentence(np.random.default_rng(3), 4, 9) for _ in range(2)]
    assert first[0] == first[1]
    assert random_sentence(np.random.default_rng(4), 4, 9) != first[0]
    rng = np.random.default_rng(0)
    for _ in range(50):
        words = random_sentence(rng, 3, 7).lower().rstrip(".?").replace(",", "").split()
        assert 3 <= len(words) <= 7
        assert set(words) <= set(WORDS)
    assert len(set(WORDS)) == len(WORDS) >= 300


@needs_espeak
def test_same_text_and_voice_give_identical_audio():
    text = "Five brave people moved the heavy boat."
    for voice in ("en-us", "en-us+f3"):  # f3 adds breath noise from rand()
        first = synthesize(text, voice)
        synthesize("Something else entirely, to change the library state.", "en+m3", rate_wpm=220)
        second = synthesize(text, voice)
        np.testing.assert_array_equal(first.audio, second.audio)
        assert first.phonemes == second.phonemes


@needs_espeak
def test_audio_is_16khz_float32_and_matches_the_phoneme_timeline():
    result = synthesize("The quick brown fox jumps over the lazy dog. Who knows?")
    assert result.sample_rate == 16000
    assert result.audio.dtype == np.float32 and result.audio.ndim == 1
    assert np.abs(result.audio).max() <= 1.0
    assert 0.5 < np.abs(result.audio).max()  # not silent
    assert abs(result.phonemes[-1].start - result.duration) < 0.2
    assert result.phonemes[-1].end == pytest.approx(result.duration)


@needs_espeak
def test_phoneme_events_are_monotone_and_spell_the_word():
    result = synthesize("map", "en-us")
    starts = [p.start for p in result.phonemes]
    assert starts == sorted(starts)
    assert all(p.end > p.start for p in result.phonemes)
    assert all(a.end == pytest.approx(b.start) for a, b in itertools.pairwise(result.phonemes))
    spoken = [p for p in result.phonemes if not p.is_pause]
    assert [p.symbol for p in spoken] == ["m", "a", "p"]
    assert [p.stressed for p in spoken] == [False, True, False]
    assert 0.1 < spoken[1].end - spoken[1].start < 0.4


@needs_espeak
def test_stress_marks_follow_the_lexical_stress():
    result = synthesize("Tomorrow, banana.", "en-us")
    stressed = [p.symbol for p in result.phonemes if p.stressed]
    assert stressed == ["A:", "a"]  # to-MOR-row, ba-NA-na


@needs_espeak
def test_every_voice_loads_and_sounds_different():
    audios = [synthesize("Hello there.", voice).audio for voice in VOICES]
    for i in range(len(audios)):
        for j in range(i + 1, len(audios)):
            assert len(audios[i]) != len(audios[j]) or not np.array_equal(audios[i], audios[j])
    with pytest.raises(ValueError, match="no voice"):
        synthesize("Hello.", "xx-nonexistent")


@needs_espeak
def test_rate_and_pitch_change_the_speech():
    slow = synthesize("Seven valleys were full of snow.", rate_wpm=120)
    fast = synthesize("Seven valleys were full of snow.", rate_wpm=240)
    assert slow.duration > 1.5 * fast.duration
    low, high = (synthesize("Seven valleys.", pitch=p).audio for p in (20, 80))
    assert not (len(low) == len(high) and np.array_equal(low, high))
    with pytest.raises(ValueError):
        synthesize("Hello.", rate_wpm=20)
    with pytest.raises(ValueError):
        synthesize("   ")


@needs_espeak
def test_word_list_covers_every_viseme():
    spoken = synthesize(" ".join(WORDS) + ".").phonemes
    assert all(len(visemes_of(p.symbol)) >= 1 for p in spoken)
    covered = {name for p in spoken for name in visemes_of(p.symbol)}
    assert covered == set(VISEMES)


@needs_espeak
def test_concurrent_threads_give_the_same_speech():
    texts = [random_sentence(np.random.default_rng(seed)) for seed in range(6)]
    sequential = [synthesize(t).audio for t in texts]
    with ThreadPoolExecutor(4) as pool:
        threaded = [s.audio for s in pool.map(synthesize, texts)]
    for a, b in zip(sequential, threaded, strict=True):
        np.testing.assert_array_equal(a, b)


@needs_espeak
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_processes_give_the_same_speech(method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    text = "Who would have thought of that?"
    expected = synthesize(text, "en-gb-x-rp")
    # One intra-op thread in the worker, as torch's DataLoader does: a forked child cannot use the OpenMP
    # pool its parent has started (the resampling would hang).
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(1, mp_context=context, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        result = pool.submit(synthesize, text, "en-gb-x-rp").result(timeout=60)
    np.testing.assert_array_equal(result.audio, expected.audio)
    assert result.phonemes == expected.phonemes


def test_missing_library_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(espeak, "library_name", lambda: None)
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        synthesize("Hello.")


def test_phoneme_event_pause_flag():
    assert PhonemeEvent("_:", 0.0, 0.2).is_pause
    assert not PhonemeEvent("m", 0.2, 0.3).is_pause
