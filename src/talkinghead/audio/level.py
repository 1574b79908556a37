"""Recording gain taken out of the speech before stage 1: a causal automatic gain control on 40-ms frames.

How loud a recording is depends on the microphone and the mixing, not on the speaker, yet both stage-1
networks hear it: the embedded corpus speaks at about :data:`CORPUS_LEVEL_DB` (its active-speech level) and
its head gestures follow the speech level in dBFS (:mod:`talkinghead.data.synthetic.motion_synthesis`), so a
recording 6 dB quieter than the corpus moves the head less than the same speech at the corpus level would.
:class:`LevelNormalizer` brings the active-speech level to a target before the audio reaches the encoders.

The active-speech level (:func:`floored_active_level_db`) follows ITU-T P.56: the **mean power** of the active frames, a
frame being active when its level is within :data:`ACTIVITY_MARGIN_DB` of that mean (of the thresholds at which the
mean of the frames above the threshold is within the margin of it, the lowest). The loud syllables set it, and
pauses and breaths tens of dB below them are not counted. Two departures make it robust where P.56's threshold
alone is not: each frame's level is the running median of three (:data:`MEDIAN_FRAMES`), so a click or a corrupt
sample one frame long is no sound at all (counted alone, a −3 dBFS click made P.56's level its own and cut quiet
speech by 7 dB for the 10 s it was remembered); and frames more than :data:`FLOOR_DB` below the 95th percentile of
the remembered levels are left out, so noise in a pause long enough to outnumber the speech still remembered is not
counted either. A mean of the frames' levels in dB would not do at all: it counts a quiet frame as much as a loud
one, so it reads real speech, whose consonants and decays spread over 30 dB, several dB lower than the corpus'
even syllables, and a recording that opens on 3 s of room noise at −54 dBFS as 15 dB quieter than its speech.

It is causal, so a stream and an offline run give the same samples (:func:`normalize_level` is the same
computation on a whole recording): per 40-ms video frame (640 samples at 16 kHz),

* the frame's median level (dBFS RMS) is remembered when it is above ``gate_db`` (digital silence is not), the
  last ``memory_frames`` of them (10 s);
* the estimate ``L`` is the active-speech level of the remembered frames, averaged in dB with the target at the
  weight of ``prior_frames`` active frames (so the first syllables cannot set the gain alone). Noise heard before
  any speech is the only sound, so it counts until the speech arrives; the speech's first frames leave it below
  the threshold;
* the gain moves towards ``clip(target − L, ±max_gain_db)`` by at most ``attack_db`` per frame downwards (a
  louder sound is brought down within a few frames) and ``release_db`` per frame upwards (a quieter one is
  raised over a second or so), and is ramped linearly over each frame from the previous frame's gain (no steps in
  the waveform);
* optionally (``pause_depth_db`` > 0) the pauses are turned down further, as a broadcast noise gate does: a frame
  whose own level is more than ``pause_margin_db`` below ``L`` is a pause, its gain lowered by up to
  ``pause_depth_db`` (by at most ``pause_close_db`` more per frame), and the first frame that is not a pause has
  its full gain again. The corpus' espeak-ng speech pauses in near silence; a recording's pauses hold its room and
  microphone noise, which the networks would otherwise hear as quiet speech and move the mouth to.

So within an utterance the syllables keep their relative loudness (the estimate moves with the memory, slowly).
A change of speaker or microphone is followed gradually, fully within the memory: a 10-dB rise is heard 5 dB too
loud after 2 s and 2 dB after 6 s, a 10-dB fall 9 dB too quiet after 3 s and 2 dB after 9 s. The output may exceed
±1 where a loud sound follows quiet speech: the networks' features do not clip, and the video keeps the speech as
given.
"""

from collections import deque

import numpy as np

from talkinghead.conventions import FRAME_SAMPLES

CORPUS_LEVEL_DB = -20.0
"""Active-speech level (:func:`active_level_db`) of the embedded corpus' espeak-ng speech in dBFS: median of the
64 clips of ``make demo``'s corpus −19.9 (−21.9 … −16.7 per clip)."""

GATE_DB = -60.0
"""Frames at or below this level (dBFS RMS) are silence: never part of the active-speech level."""

ACTIVITY_MARGIN_DB = 15.9
"""ITU-T P.56's margin: a frame is active speech when its level is within this of the active-speech level."""

MEDIAN_FRAMES = 3
"""A frame's level is the median of its own and the previous frames' levels over this many frames (a click or
a corrupt sample one frame long is not speech)."""

PAUSE_DEPTH_DB = 20.0
"""How far the pipeline turns a recording's pauses down for stage 1 (docs/RESULTS.md, twelfth pass)."""

PAUSE_MARGIN_DB = 10.0
"""A frame more than this below the active-speech level estimate is a pause (docs/RESULTS.md, twelfth pass)."""

FLOOR_DB = 20.0
"""Frames more than this below the 95th percentile of the remembered levels are not speech (noise in a pause
long enough to outnumber the speech still remembered)."""


def frame_levels_db(audio: np.ndarray) -> np.ndarray:
    """RMS level (dBFS) of each whole 40-ms frame of 16-kHz audio, each frame on its own (not
    :func:`~talkinghead.audio.envelope.speech_energy`'s running sum, through which one non-finite sample would
    spoil every later frame)."""
    whole = len(audio) // FRAME_SAMPLES * FRAME_SAMPLES
    frames = np.asarray(audio[:whole], np.float64).reshape(-1, FRAME_SAMPLES)
    with np.errstate(invalid="ignore", over="ignore"):
        return 10.0 * np.log10(np.maximum(np.mean(np.square(frames), axis=1), 1e-20))


def frames_active_level_db(levels_db: np.ndarray, margin_db: float = ACTIVITY_MARGIN_DB) -> tuple[float, int]:
    """P.56's active level of frame levels (n ≥ 1 finite values, dBFS) → (level, number of active frames): of the
    thresholds at which the mean power of the frames above is within ``margin_db`` of the threshold, the lowest."""
    ordered = np.sort(levels_db)[::-1]
    means = 10.0 * np.log10(np.cumsum(10.0 ** (ordered / 10.0)) / np.arange(1, len(ordered) + 1))
    count = int(np.flatnonzero(means - ordered <= margin_db)[-1]) + 1
    return float(means[count - 1]), count


def floored_active_level_db(remembered_db: np.ndarray, margin_db: float = ACTIVITY_MARGIN_DB) -> tuple[float, int]:
    """Active level of remembered frame levels (n ≥ 1) above the floor (:data:`FLOOR_DB`) → (level, count)."""
    floor = np.percentile(remembered_db, 95) - FLOOR_DB
    return frames_active_level_db(remembered_db[remembered_db >= floor], margin_db)


def median_levels_db(levels_db: np.ndarray, previous_db: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Causal running median over :data:`MEDIAN_FRAMES` frames → (medians, the ``previous_db`` of the frames that
    follow). ``previous_db`` holds the levels of the ``MEDIAN_FRAMES − 1`` frames before these (None = silence,
    −inf, before a recording); a non-finite level counts as +inf (a corrupt frame is an impulse, removed like a
    click)."""
    if previous_db is None:
        previous_db = np.full(MEDIAN_FRAMES - 1, -np.inf)
    levels = np.concatenate((previous_db, np.where(np.isfinite(levels_db), levels_db, np.inf)))
    history = levels[len(levels) - (MEDIAN_FRAMES - 1) :]
    if not len(levels_db):
        return np.zeros(0), history
    return np.median(np.lib.stride_tricks.sliding_window_view(levels, MEDIAN_FRAMES), axis=-1), history


def active_level_db(audio: np.ndarray, gate_db: float = GATE_DB, margin_db: float = ACTIVITY_MARGIN_DB) -> float | None:
    """Active-speech level of a whole recording (module docstring) in dBFS; None when every frame is silence."""
    levels = median_levels_db(frame_levels_db(audio))[0]
    levels = levels[np.isfinite(levels) & (levels > gate_db)]
    return floored_active_level_db(levels, margin_db)[0] if len(levels) else None


class LevelNormalizer:
    """Causal gain control (module docstring): :meth:`process` chunks of any length, :meth:`flush` at the end.

    Args:
        target_db: the active-speech level to reach (dBFS RMS).
        gate_db: frames at or below this level are silence and never remembered (nor are non-finite ones).
        margin_db: the activity margin of the active-speech level.
        prior_frames: weight of the target in the estimate, in active frames.
        memory_frames: number of frames above ``gate_db`` remembered.
        max_gain_db: largest boost or cut.
        attack_db, release_db: largest fall and rise of the gain from one frame to the next.
        pause_depth_db: attenuation of the pauses (frames whose own level is more than ``pause_margin_db`` below
            the active-speech level estimate), on top of the gain; 0 leaves them at the gain.
        pause_margin_db: how far below the active-speech level a frame is a pause.
        pause_close_db: largest fall of the pause attenuation from one frame to the next (it lifts at once).
    """

    def __init__(
        self,
        target_db: float = CORPUS_LEVEL_DB,
        gate_db: float = GATE_DB,
        margin_db: float = ACTIVITY_MARGIN_DB,
        prior_frames: int = 2,
        memory_frames: int = 250,
        max_gain_db: float = 12.0,
        attack_db: float = 3.0,
        release_db: float = 1.0,
        pause_depth_db: float = 0.0,
        pause_margin_db: float = PAUSE_MARGIN_DB,
        pause_close_db: float = 5.0,
    ) -> None:
        if prior_frames < 1 or memory_frames < 1:
            raise ValueError(f"need prior_frames ≥ 1 and memory_frames ≥ 1, got {prior_frames} and {memory_frames}")
        if pause_depth_db < 0 or pause_close_db <= 0:
            raise ValueError(f"need pause_depth_db ≥ 0 and pause_close_db > 0, got {pause_depth_db}, {pause_close_db}")
        self.target_db = target_db
        self.gate_db = gate_db
        self.margin_db = margin_db
        self.prior_frames = prior_frames
        self.previous_db: np.ndarray | None = None  # the last raw frame levels, for the running median
        self.remembered_db: deque[float] = deque(maxlen=memory_frames)
        self.max_gain_db = max_gain_db
        self.attack_db, self.release_db = attack_db, release_db
        self.level_db = target_db
        self.gain_db = 0.0
        self.pause_depth_db, self.pause_margin_db, self.pause_close_db = pause_depth_db, pause_margin_db, pause_close_db
        self.pause_db = 0.0
        self.pending = np.zeros(0, np.float32)

    def _gain_db(self, level_db: float, own_db: float) -> float:
        """Update the estimate with one whole frame's median level (``own_db``: its own level); → the frame's gain
        (dB), pause included."""
        if np.isfinite(level_db) and level_db > self.gate_db:
            self.remembered_db.append(level_db)
            active_db, count = floored_active_level_db(np.fromiter(self.remembered_db, float), self.margin_db)
            weights = self.prior_frames + count
            self.level_db = (self.prior_frames * self.target_db + count * active_db) / weights
        wanted = float(np.clip(self.target_db - self.level_db, -self.max_gain_db, self.max_gain_db))
        self.gain_db = float(np.clip(wanted, self.gain_db - self.attack_db, self.gain_db + self.release_db))
        if self.pause_depth_db > 0.0:
            pause = own_db < self.level_db - self.pause_margin_db
            self.pause_db = max(-self.pause_depth_db, self.pause_db - self.pause_close_db) if pause else 0.0
        return self.gain_db + self.pause_db

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Append samples; → the normalised samples of every frame completed so far (whole frames, maybe none)."""
        self.pending = np.concatenate((self.pending, np.asarray(samples, np.float32).reshape(-1)))
        whole = len(self.pending) // FRAME_SAMPLES * FRAME_SAMPLES
        frames = self.pending[:whole].reshape(-1, FRAME_SAMPLES)
        self.pending = self.pending[whole:]
        levels = frame_levels_db(frames.ravel())
        medians, self.previous_db = median_levels_db(levels, self.previous_db)
        gains = [self.gain_db + self.pause_db]
        gains += [self._gain_db(float(median), float(own)) for median, own in zip(medians, levels, strict=True)]
        gains = np.array(gains)
        ramp = np.arange(1, FRAME_SAMPLES + 1) / FRAME_SAMPLES  # each frame ramps from the previous frame's gain
        ramps_db = gains[:-1, None] + (gains[1:] - gains[:-1])[:, None] * ramp
        return (frames * 10.0 ** (ramps_db / 20.0)).reshape(-1).astype(np.float32)

    def flush(self) -> np.ndarray:
        """The samples of the last, partial frame at the last frame's gain."""
        rest, self.pending = self.pending, np.zeros(0, np.float32)
        return (rest * 10.0 ** ((self.gain_db + self.pause_db) / 20.0)).astype(np.float32)


def normalize_level(audio: np.ndarray, target_db: float = CORPUS_LEVEL_DB, **pauses: float) -> np.ndarray:
    """A whole recording through a fresh :class:`LevelNormalizer` (the samples a stream of it would give);
    ``pauses``: its ``pause_*`` arguments."""
    normalizer = LevelNormalizer(target_db, **pauses)
    return np.concatenate((normalizer.process(audio), normalizer.flush()))
