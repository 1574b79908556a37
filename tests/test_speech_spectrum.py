"""Long-term speech spectra (:mod:`talkinghead.audio.spectrum`) and the causal equaliser
(:mod:`talkinghead.audio.equalizer`): a coloured recording brought to the target spectrum, speech already there
left alone, power kept, streams exact, and the corpus spectrum it aims at measured on the embedded corpus."""

import numpy as np
import pytest
from scipy.signal import lfilter

from talkinghead.audio.equalizer import SpectrumEqualizer, equalize_spectrum
from talkinghead.audio.level import active_level_db
from talkinghead.audio.spectrum import (
    CORPUS_SPECTRUM_DB,
    equalizing_filter,
    long_term_spectrum_db,
    relative_db,
)
from talkinghead.conventions import FRAME_SAMPLES, SAMPLE_RATE
from talkinghead.data.shards import iter_clips
from tests.helpers import assert_streams_like_whole

TARGET = np.array(CORPUS_SPECTRUM_DB)
DARK_MICROPHONE_DB = np.array([3.0, 0.0, -1.0, -6.0, -9.0, -12.0, -4.0])
"""A colour like the real recordings' against the corpus (up to 12 dB darker in the 2- and 4-kHz octaves)."""


def speech_like(seconds: float, seed: int = 0, spectrum_db: tuple[float, ...] = CORPUS_SPECTRUM_DB) -> np.ndarray:
    """Noise with a long-term spectrum (by default the corpus') in syllables: 150-ms bursts at random
    levels within 12 dB, separated by 50-ms pauses 40 dB down."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(int(seconds * SAMPLE_RATE))
    shaped = lfilter(equalizing_filter(np.array(spectrum_db) - long_term_spectrum_db(white)), [1.0], white)
    syllable = np.concatenate([np.ones(int(0.15 * SAMPLE_RATE)), np.full(int(0.05 * SAMPLE_RATE), 0.01)])
    syllables = int(np.ceil(len(white) / len(syllable)))
    envelope = np.concatenate([syllable * 10 ** (rng.uniform(-12, 0) / 20) for _ in range(syllables)])
    return (0.05 * shaped * envelope[: len(white)]).astype(np.float32)


def coloured(audio: np.ndarray, colour_db: np.ndarray) -> np.ndarray:
    return lfilter(equalizing_filter(colour_db), [1.0], audio).astype(np.float32)


def test_the_test_signal_has_the_corpus_spectrum():
    assert np.abs(long_term_spectrum_db(speech_like(6.0)) - TARGET).max() < 1.0


def test_a_dark_recording_is_brought_to_the_target_spectrum():
    """A recording coloured like a real microphone (12 dB darker at 4 kHz) is within 1.5 dB of the corpus'
    spectrum in every band once 4 s have been heard (12 dB off before)."""
    dark = coloured(speech_like(10.0), DARK_MICROPHONE_DB)
    assert np.abs(long_term_spectrum_db(dark[4 * SAMPLE_RATE :]) - TARGET).max() > 11.0
    out = equalize_spectrum(dark)
    assert np.abs(long_term_spectrum_db(out[4 * SAMPLE_RATE :]) - TARGET).max() < 1.5


def test_speech_at_the_target_spectrum_is_left_alone():
    """Speech already at the target: every band within 0.75 dB of the input's and the samples within 10 % of its
    RMS of the input's (the filter stays near the unit impulse it starts with)."""
    speech = speech_like(6.0)
    out = equalize_spectrum(speech)
    assert np.abs(long_term_spectrum_db(out) - long_term_spectrum_db(speech)).max() < 0.75
    assert np.sqrt(np.mean(np.square(out - speech))) < 0.1 * np.sqrt(np.mean(np.square(speech)))


def test_the_power_is_kept():
    """The dark recording's active level moves by less than 1 dB: the level is the gain control's to set."""
    dark = coloured(speech_like(10.0), DARK_MICROPHONE_DB)
    assert active_level_db(equalize_spectrum(dark)) == pytest.approx(active_level_db(dark), abs=1.0)


def test_gains_move_by_at_most_their_step_and_stay_within_their_limit():
    equalizer = SpectrumEqualizer(step_db=0.5, max_gain_db=6.0)
    dark = coloured(speech_like(6.0), DARK_MICROPHONE_DB)
    previous = equalizer.gains_db.copy()
    for start in range(0, len(dark), FRAME_SAMPLES):
        equalizer.process(dark[start : start + FRAME_SAMPLES])
        assert np.abs(equalizer.gains_db - previous).max() <= 0.5 + 1e-9
        previous = equalizer.gains_db.copy()
    assert np.abs(equalizer.gains_db).max() <= 6.0 + 1e-9
    assert equalizer.gains_db[-2] > 5.0  # the 4-kHz band, 12 dB dark, is raised to about the limit


def test_silence_stays_silence():
    out = equalize_spectrum(np.zeros(SAMPLE_RATE + 100, np.float32))
    assert len(out) == SAMPLE_RATE + 100
    assert not np.any(out)


@pytest.mark.parametrize("chunk", [333, 1000, 3517])
def test_chunked_processing_equals_the_whole_recording(chunk):
    """Chunk sizes that do not divide the 640-sample frame give exactly the whole-recording samples."""
    audio = coloured(speech_like(3.3, seed=1), DARK_MICROPHONE_DB)
    assert_streams_like_whole(SpectrumEqualizer(), audio, equalize_spectrum(audio), chunk)


def test_a_target_needs_one_value_per_band():
    with pytest.raises(ValueError, match="7 bands"):
        SpectrumEqualizer(target_db=(0.0, 0.0))


def test_the_embedded_corpus_has_the_corpus_spectrum(tiny_corpus):
    """:data:`CORPUS_SPECTRUM_DB` is what the corpus generator produces: the mean spectrum of the tiny corpus'
    six 2-s clips within 2 dB of it in the 250-Hz to 4-kHz bands and within 3.5 dB in the outer two (where
    single clips spread by 3–5 dB)."""
    spectra = [long_term_spectrum_db(clip.audio) for clip in iter_clips(tiny_corpus, fields=("audio",))]
    assert len(spectra) == 6
    mean = relative_db(np.mean(10 ** (np.array(spectra) / 10), axis=0))
    assert np.abs(mean - TARGET)[1:-1].max() < 2.0
    assert np.abs(mean - TARGET)[[0, -1]].max() < 3.5
