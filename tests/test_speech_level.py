"""The causal speech-level control (:mod:`talkinghead.audio.level`): levels reached, dynamics kept, streams exact."""

import numpy as np
import pytest

from talkinghead.audio.level import LevelNormalizer, normalize_level
from talkinghead.conventions import FRAME_SAMPLES, SAMPLE_RATE


def tone(seconds: float, level_db: float, frequency: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (np.sqrt(2) * 10 ** (level_db / 20) * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def level_db(samples: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.square(samples, dtype=np.float64)))


@pytest.mark.parametrize("recorded_db", [-33.0, -27.0, -9.0])
def test_a_steady_recording_ends_at_the_target(recorded_db):
    """After 3 s of steady speech-level signal the last second is at the target within 0.5 dB."""
    out = normalize_level(tone(4.0, recorded_db), target_db=-21.0)
    assert level_db(out[-SAMPLE_RATE:]) == pytest.approx(-21.0, abs=0.5)


def test_syllables_keep_their_relative_loudness():
    """Alternating 200-ms segments 6 dB apart, recorded 10 dB below the target: after the estimate has
    settled (2 s) the loud and soft segments are still 6 ± 0.5 dB apart and their mean is at the target ± 1 dB."""
    segment = int(0.2 * SAMPLE_RATE)
    pattern = np.concatenate([tone(0.2, -28.0), tone(0.2, -34.0)])
    out = normalize_level(np.tile(pattern, 15), target_db=-21.0)
    loud = [level_db(out[i : i + segment]) for i in range(2 * SAMPLE_RATE, len(out) - segment, 2 * segment)]
    soft = [
        level_db(out[i + segment : i + 2 * segment])
        for i in range(2 * SAMPLE_RATE, len(out) - 2 * segment, 2 * segment)
    ]
    assert np.mean(loud) - np.mean(soft) == pytest.approx(6.0, abs=0.5)
    assert (np.mean(loud) + np.mean(soft)) / 2 == pytest.approx(-21.0, abs=1.0)


def test_pauses_do_not_move_the_gain():
    """A second of near-silence between two utterances leaves the gain where the first utterance put it."""
    normalizer = LevelNormalizer(target_db=-21.0)
    normalizer.process(tone(2.0, -30.0))
    before = normalizer.gain_db
    normalizer.process(tone(1.0, -70.0))
    assert normalizer.gain_db == before
    assert before == pytest.approx(9.0, abs=1.5)


def test_gain_is_bounded():
    normalizer = LevelNormalizer(target_db=-21.0, max_gain_db=12.0)
    normalizer.process(tone(3.0, -50.0))
    assert normalizer.gain_db == 12.0


@pytest.mark.parametrize("chunk", [333, 1000, 3517])
def test_chunked_processing_equals_the_whole_recording(chunk):
    """Chunk sizes that do not divide the 640-sample frame give exactly the whole-recording samples."""
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(int(2.3 * SAMPLE_RATE)) * np.repeat(rng.uniform(0.001, 0.1, 23), 1600)).astype(
        np.float32
    )
    normalizer = LevelNormalizer()
    parts = [normalizer.process(audio[i : i + chunk]) for i in range(0, len(audio), chunk)] + [normalizer.flush()]
    streamed = np.concatenate(parts)
    assert len(streamed) == len(audio)
    np.testing.assert_array_equal(streamed, normalize_level(audio))
    assert all(len(part) % FRAME_SAMPLES == 0 for part in parts[:-1])
