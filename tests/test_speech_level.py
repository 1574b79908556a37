"""The causal speech-level control (:mod:`talkinghead.audio.level`): levels reached, dynamics kept, noise ignored,
streams exact, and the corpus level it aims at measured on the embedded corpus."""

import numpy as np
import pytest

from talkinghead.audio.level import CORPUS_LEVEL_DB, LevelNormalizer, active_level_db, normalize_level
from talkinghead.conventions import FRAME_SAMPLES, SAMPLE_RATE
from talkinghead.data.shards import iter_clips
from tests.helpers import assert_streams_like_whole


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


def power_mean_db(*levels_db: float) -> float:
    return 10 * np.log10(np.mean(10 ** (np.array(levels_db) / 10)))


def syllables(seconds: float, loud_db: float, soft_db: float) -> np.ndarray:
    """Alternating 200-ms segments at two levels."""
    return np.tile(np.concatenate([tone(0.2, loud_db), tone(0.2, soft_db)]), round(seconds / 0.4))


def test_syllables_keep_their_relative_loudness():
    """Alternating 200-ms segments 6 dB apart, recorded 10 dB below the target: after the estimate has
    settled (2 s) the loud and soft segments are still 6 ± 0.5 dB apart and their mean power is at the target
    ± 0.5 dB."""
    segment = int(0.2 * SAMPLE_RATE)
    out = normalize_level(syllables(6.0, -28.0, -34.0), target_db=-21.0)
    loud = [level_db(out[i : i + segment]) for i in range(2 * SAMPLE_RATE, len(out) - segment, 2 * segment)]
    soft = [
        level_db(out[i + segment : i + 2 * segment])
        for i in range(2 * SAMPLE_RATE, len(out) - 2 * segment, 2 * segment)
    ]
    assert np.mean(loud) - np.mean(soft) == pytest.approx(6.0, abs=0.5)
    assert power_mean_db(np.mean(loud), np.mean(soft)) == pytest.approx(-21.0, abs=0.5)


def test_active_level_is_the_mean_power_of_the_speech():
    """Exact on segments 6 dB apart (their mean power, not the −31 dB mean of their levels); 3 s of noise 26 dB
    below the soft segments changes it by less than 0.01 dB; digital silence has no level."""
    speech = syllables(4.0, -28.0, -34.0)
    assert active_level_db(speech) == pytest.approx(power_mean_db(-28.0, -34.0), abs=0.01)
    noise = (np.random.default_rng(0).standard_normal(3 * SAMPLE_RATE) * 10 ** (-60 / 20)).astype(np.float32)
    assert active_level_db(np.concatenate([noise, speech])) == pytest.approx(active_level_db(speech), abs=0.01)
    assert active_level_db(np.zeros(SAMPLE_RATE, np.float32)) is None


def test_noise_before_the_speech_does_not_set_the_gain():
    """A recording that opens on 3 s of room noise (−54 dBFS, above the silence gate) before speech at an
    active level of −30 dBFS: from the speech's first 200 ms on, the speech is brought to the target within
    1 dB. (A running mean of the frames' levels in dB counts the noise as speech: it leaves this speech 2.9 dB
    too loud, and a broadcast recording opening this way 12 dB, its limit.)"""
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(3 * SAMPLE_RATE) * 10 ** (-54 / 20)).astype(np.float32)
    speech = syllables(4.0, -28.5, -32.5)
    out = normalize_level(np.concatenate([noise, speech]), target_db=-21.0)
    settled = out[3 * SAMPLE_RATE + int(0.2 * SAMPLE_RATE) :]
    assert active_level_db(settled) == pytest.approx(-21.0, abs=1.0)


def test_the_embedded_corpus_speaks_at_the_corpus_level(tiny_corpus):
    """:data:`CORPUS_LEVEL_DB` is what the corpus generator produces: the median active level of the tiny
    corpus' six clips within 1 dB of it, every clip within 3 dB."""
    levels = [active_level_db(clip.audio) for clip in iter_clips(tiny_corpus, fields=("audio",))]
    assert len(levels) == 6
    assert np.median(levels) == pytest.approx(CORPUS_LEVEL_DB, abs=1.0)
    assert np.all(np.abs(np.array(levels) - CORPUS_LEVEL_DB) < 3.0)


@pytest.mark.parametrize("pause_db", [-70.0, -54.0])
def test_pauses_do_not_move_the_gain(pause_db):
    """A second of digital silence (−70 dBFS, below the gate) or room noise (−54 dBFS, remembered but far below
    the speech) between two utterances leaves the gain within 0.05 dB of where the first utterance put it (the
    running median lets one more frame of the utterance in)."""
    normalizer = LevelNormalizer(target_db=-21.0)
    normalizer.process(tone(2.0, -30.0))
    before = normalizer.gain_db
    rng = np.random.default_rng(0)
    normalizer.process((rng.standard_normal(SAMPLE_RATE) * 10 ** (pause_db / 20)).astype(np.float32))
    assert normalizer.gain_db == pytest.approx(before, abs=0.05)
    assert before == pytest.approx(9.0, abs=1.5)


@pytest.mark.parametrize(
    ("loud_db", "at_s", "click"),
    [
        (-22.0, 4, tone(0.04, -3.0, 1000.0)),  # a click in loud speech
        (-30.0, 2, tone(0.04, -3.0, 1000.0)),  # in quiet speech, early
        (-30.0, 1, np.sign(tone(0.04, 0.0, 500.0))),  # a full-scale pop
        (-22.0, 1, np.array([1e30], np.float32)),  # one corrupt sample
    ],
)
def test_a_click_does_not_move_the_level(loud_db, at_s, click):
    """A 40-ms click or one corrupt sample in speech: the 8 s after it reach the stage-1 networks within 1 dB of
    the same speech without it (a threshold set by the loudest frame had counted a −3 dBFS click alone and cut
    loud speech by 10 dB for 10 s; P.56's threshold alone still counts it and cuts quiet speech by 7 dB)."""
    speech = syllables(12.0, loud_db, loud_db - 6.0)
    clicked = speech.copy()
    clicked[at_s * SAMPLE_RATE : at_s * SAMPLE_RATE + len(click)] = click
    after = slice(at_s * SAMPLE_RATE + FRAME_SAMPLES, (at_s + 8) * SAMPLE_RATE)
    with_click, without = normalize_level(clicked, -19.0)[after], normalize_level(speech, -19.0)[after]
    assert abs(active_level_db(with_click) - active_level_db(without)) < 1.0


def test_the_gain_falls_and_rises_at_its_limits_and_ramps_within_frames():
    """A constant signal at −40 dBFS for 1 s, then at −5: the gain climbs to its +12-dB limit by exactly 1 dB
    per frame (from the second frame: the running median starts from silence), then falls by exactly 3 dB per
    frame; sample to sample it never changes by more than 3 dB / 640."""
    audio = np.concatenate([np.full(SAMPLE_RATE, 0.01, np.float32), np.full(SAMPLE_RATE, 10**-0.25, np.float32)])
    normalizer = LevelNormalizer(target_db=-20.0)
    gains = []
    for start in range(0, len(audio), FRAME_SAMPLES):
        normalizer.process(audio[start : start + FRAME_SAMPLES])
        gains.append(normalizer.gain_db)
    steps = np.diff([0.0, *gains])
    assert steps[0] == 0.0 and np.allclose(steps[1:13], 1.0) and gains[12] == pytest.approx(12.0)
    onset = SAMPLE_RATE // FRAME_SAMPLES
    assert np.allclose(steps[onset + 1 : onset + 5], -3.0)  # the running median lets the onset in a frame late
    assert steps.min() >= -3.0 - 1e-9 and steps.max() <= 1.0 + 1e-9
    sample_gain_db = 20 * np.log10(normalize_level(audio, -20.0) / audio)
    assert np.abs(np.diff(sample_gain_db)).max() <= 3.0 / FRAME_SAMPLES + 1e-5  # float32 output


def test_a_non_finite_sample_is_not_remembered():
    """An inf sample spoils its own frame only: the frames after it stay finite and the last second is at the
    target within 1 dB."""
    audio = syllables(4.0, -30.0, -34.0)
    audio[SAMPLE_RATE] = np.inf
    out = normalize_level(audio, -21.0)
    assert np.isfinite(out[SAMPLE_RATE + FRAME_SAMPLES :]).all()
    assert active_level_db(out[-SAMPLE_RATE:]) == pytest.approx(-21.0, abs=1.0)


def test_a_quieter_speaker_is_followed_gradually_within_the_memory():
    """12 s of speech at the target, then 14 s 10 dB quieter: the quieter speech is heard quieter while the 10-s
    memory holds mostly the louder (second 13: 8 dB or more below the target), is at the target within 1 dB from
    second 24 on, and the gain rises by at most 1 dB per frame on the way."""
    audio = np.concatenate([syllables(12.0, -19.0, -23.0), syllables(14.0, -29.0, -33.0)])
    normalizer = LevelNormalizer(target_db=-19.0)
    gains = []
    for start in range(0, len(audio), FRAME_SAMPLES):
        normalizer.process(audio[start : start + FRAME_SAMPLES])
        gains.append(normalizer.gain_db)
    out = normalize_level(audio, -19.0)
    assert active_level_db(out[13 * SAMPLE_RATE : 14 * SAMPLE_RATE]) < -19.0 - 8.0
    assert active_level_db(out[24 * SAMPLE_RATE :]) == pytest.approx(-19.0, abs=1.0)
    assert np.diff(gains).max() <= 1.0 + 1e-9


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
    assert_streams_like_whole(LevelNormalizer(), audio, normalize_level(audio), chunk)


def speech_with_pauses(
    seconds: float, speech_db: float = -25.0, pause_db: float = -50.0
) -> tuple[np.ndarray, np.ndarray]:
    """Alternating 400-ms syllables (two levels 4 dB apart around ``speech_db``) and 320-ms pauses of noise
    at ``pause_db`` → (samples, mask of the 40-ms frames that are pause)."""
    rng = np.random.default_rng(0)
    parts, pause_frames = [], []
    for i in range(int(seconds / 0.72)):
        parts.append(tone(0.4, speech_db + (2.0 if i % 2 else -2.0)))
        parts.append((rng.standard_normal(int(0.32 * SAMPLE_RATE)) * 10 ** (pause_db / 20)).astype(np.float32))
        pause_frames += [False] * 10 + [True] * 8
    return np.concatenate(parts), np.array(pause_frames)


def frame_db(samples: np.ndarray) -> np.ndarray:
    whole = len(samples) // FRAME_SAMPLES * FRAME_SAMPLES
    return 10 * np.log10(np.mean(np.square(samples[:whole].reshape(-1, FRAME_SAMPLES), dtype=np.float64), axis=1))


def test_pauses_are_attenuated_and_speech_is_not():
    """With ``pause_depth_db=20``, after 2 s the noise in the pauses (25 dB below the speech) leaves 20 dB
    quieter than without it from the pause's fifth frame on (the attenuation falls 5 dB per frame, ramped within
    each frame), while the syllables from their second frame on leave as loud as without it (within 0.1 dB)."""
    audio, pause = speech_with_pauses(6.0)
    plain = frame_db(normalize_level(audio, -21.0))
    gated = frame_db(normalize_level(audio, -21.0, pause_depth_db=20.0))
    settled = np.arange(len(pause)) >= 50
    deep = pause & np.roll(pause, 4) & np.roll(pause, 3) & np.roll(pause, 2) & np.roll(pause, 1) & settled
    assert deep.sum() >= 20
    np.testing.assert_allclose(gated[deep] - plain[deep], -20.0, atol=0.1)
    speaking = ~pause & ~np.roll(pause, 1) & settled
    np.testing.assert_allclose(gated[speaking], plain[speaking], atol=0.1)


def test_the_pause_attenuation_closes_at_its_limit_and_lifts_at_once():
    """The attenuation falls by at most 5 dB per frame to its depth, and is 0 on every syllable frame (after the
    first second, while the level estimate settles)."""
    normalizer = LevelNormalizer(-21.0, pause_depth_db=20.0, pause_close_db=5.0)
    audio, pause = speech_with_pauses(3.0)
    depths = []
    for start in range(0, len(audio), FRAME_SAMPLES):
        normalizer.process(audio[start : start + FRAME_SAMPLES])
        depths.append(normalizer.pause_db)
    depths = np.array(depths[: len(pause)])
    assert np.diff(depths).min() >= -5.0 - 1e-9
    assert depths.min() == -20.0
    assert np.all(depths[~pause & (np.arange(len(pause)) >= 25)] == 0.0)


@pytest.mark.parametrize("chunk", [333, 3517])
def test_chunked_processing_with_pauses_equals_the_whole_recording(chunk):
    audio, _ = speech_with_pauses(2.4)
    whole = normalize_level(audio, pause_depth_db=20.0)
    assert_streams_like_whole(LevelNormalizer(pause_depth_db=20.0), audio, whole, chunk)
