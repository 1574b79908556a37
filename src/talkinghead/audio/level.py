"""Recording gain taken out of the speech before stage 1: a causal automatic gain control on 40-ms frames.

How loud a recording is depends on the microphone and the mixing, not on the speaker, yet both stage-1
networks hear it: the embedded corpus speaks at about :data:`CORPUS_LEVEL_DB` (its active-speech level) and
its head gestures follow the speech level in dBFS (:mod:`talkinghead.data.synthetic.motion_synthesis`), so a
recording 6 dB quieter than the corpus moves the head less than the same speech at the corpus level would.
:class:`LevelNormalizer` brings the active-speech level to a target before the audio reaches the encoders.

The active-speech level (:func:`frames_active_level_db`) follows ITU-T P.56: the **mean power** of the active
frames, a frame being active when its level is within :data:`ACTIVITY_MARGIN_DB` of that mean (of the thresholds
at which the mean of the frames above the threshold is within the margin of it, the lowest). The loud syllables
set it; pauses, breaths and background noise tens of dB below the speech are not counted, and a single loud
click is counted with the speech, not alone, so it moves the level by a few dB. A mean of the frames' levels in
dB would not do: it counts a quiet frame as much as a loud one, so it reads real speech, whose consonants and
decays spread over 30 dB, several dB lower than the corpus' even syllables, and a recording that opens on 3 s of
room noise at −54 dBFS as 15 dB quieter than its speech.

It is causal, so a stream and an offline run give the same samples (:func:`normalize_level` is the same
computation on a whole recording): per 40-ms video frame (640 samples at 16 kHz),

* the frame's level (dBFS RMS) is remembered when it is above ``gate_db`` (digital silence is not), the last
  ``memory_frames`` of them (10 s);
* the estimate ``L`` is the active-speech level of the remembered frames, averaged in dB with the target at the
  weight of ``prior_frames`` active frames (so the first syllables cannot set the gain alone). Noise heard before
  any speech is the only sound, so it counts until the speech arrives; the first loud frames leave it below the
  threshold;
* the gain moves towards ``clip(target − L, ±max_gain_db)`` by at most ``attack_db`` per frame downwards (a
  louder sound is brought down within a few frames) and ``release_db`` per frame upwards (a quieter one is
  raised over seconds), and is ramped linearly over each frame from the previous frame's gain (no steps in the
  waveform).

So within an utterance the syllables keep their relative loudness (the estimate moves with the memory, slowly).
A change of speaker or microphone is followed within the memory: a louder one gradually (a 10-dB rise is heard
5 dB too loud after 2 s, 2 dB after 6 s), a quieter one once the louder one's frames have left the memory, then
at the release rate. The output may exceed ±1 where a loud sound follows quiet speech: the networks' features do
not clip, and the video keeps the speech as given.
"""

from collections import deque

import numpy as np

from talkinghead.conventions import FRAME_SAMPLES

CORPUS_LEVEL_DB = -19.0
"""Active-speech level (:func:`active_level_db`) of the embedded corpus' espeak-ng speech in dBFS: median of the
64 clips of ``make demo``'s corpus −18.9 (−21.1 … −16.2 per clip)."""

GATE_DB = -60.0
"""Frames at or below this level (dBFS RMS) are silence: never part of the active-speech level."""

ACTIVITY_MARGIN_DB = 15.9
"""ITU-T P.56's margin: a frame is active speech when its level is within this of the active-speech level."""


def frame_levels_db(audio: np.ndarray) -> np.ndarray:
    """RMS level (dBFS) of each whole 40-ms frame of 16-kHz audio."""
    whole = len(audio) // FRAME_SAMPLES * FRAME_SAMPLES
    frames = np.asarray(audio[:whole], np.float64).reshape(-1, FRAME_SAMPLES)
    with np.errstate(invalid="ignore", over="ignore"):
        return 10.0 * np.log10(np.maximum(np.mean(np.square(frames), axis=1), 1e-20))


def frames_active_level_db(levels_db: np.ndarray, margin_db: float = ACTIVITY_MARGIN_DB) -> tuple[float, int]:
    """P.56's active level of frame levels (n ≥ 1 finite values, dBFS) → (level, number of active frames)."""
    ordered = np.sort(levels_db)[::-1]
    means = 10.0 * np.log10(np.cumsum(10.0 ** (ordered / 10.0)) / np.arange(1, len(ordered) + 1))
    count = int(np.flatnonzero(means - ordered <= margin_db)[-1]) + 1  # the lowest consistent threshold
    return float(means[count - 1]), count


def active_level_db(audio: np.ndarray, gate_db: float = GATE_DB, margin_db: float = ACTIVITY_MARGIN_DB) -> float | None:
    """Active-speech level of a whole recording (module docstring) in dBFS; None when every frame is silence."""
    levels = frame_levels_db(audio)
    levels = levels[np.isfinite(levels) & (levels > gate_db)]
    return frames_active_level_db(levels, margin_db)[0] if len(levels) else None


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
    ) -> None:
        if prior_frames < 1 or memory_frames < 1:
            raise ValueError(f"need prior_frames ≥ 1 and memory_frames ≥ 1, got {prior_frames} and {memory_frames}")
        self.target_db = target_db
        self.gate_db = gate_db
        self.margin_db = margin_db
        self.prior_frames = prior_frames
        self.remembered_db: deque[float] = deque(maxlen=memory_frames)
        self.max_gain_db = max_gain_db
        self.attack_db, self.release_db = attack_db, release_db
        self.level_db = target_db
        self.gain_db = 0.0
        self.pending = np.zeros(0, np.float32)

    def _gain_db(self, level_db: float) -> float:
        """Update the estimate with one whole frame's level; → the frame's gain (dB)."""
        if np.isfinite(level_db) and level_db > self.gate_db:
            self.remembered_db.append(level_db)
            active_db, count = frames_active_level_db(np.fromiter(self.remembered_db, float), self.margin_db)
            weights = self.prior_frames + count
            self.level_db = (self.prior_frames * self.target_db + count * active_db) / weights
        wanted = float(np.clip(self.target_db - self.level_db, -self.max_gain_db, self.max_gain_db))
        self.gain_db = float(np.clip(wanted, self.gain_db - self.attack_db, self.gain_db + self.release_db))
        return self.gain_db

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Append samples; → the normalised samples of every frame completed so far (whole frames, maybe none)."""
        self.pending = np.concatenate((self.pending, np.asarray(samples, np.float32).reshape(-1)))
        whole = len(self.pending) // FRAME_SAMPLES * FRAME_SAMPLES
        frames = self.pending[:whole].reshape(-1, FRAME_SAMPLES)
        self.pending = self.pending[whole:]
        gains = np.array([self.gain_db, *(self._gain_db(float(level)) for level in frame_levels_db(frames.ravel()))])
        ramp = np.arange(1, FRAME_SAMPLES + 1) / FRAME_SAMPLES  # each frame ramps from the previous frame's gain
        ramps_db = gains[:-1, None] + (gains[1:] - gains[:-1])[:, None] * ramp
        return (frames * 10.0 ** (ramps_db / 20.0)).reshape(-1).astype(np.float32)

    def flush(self) -> np.ndarray:
        """The samples of the last, partial frame at the last frame's gain."""
        rest, self.pending = self.pending, np.zeros(0, np.float32)
        return (rest * 10.0 ** (self.gain_db / 20.0)).astype(np.float32)


def normalize_level(audio: np.ndarray, target_db: float = CORPUS_LEVEL_DB) -> np.ndarray:
    """A whole recording through a fresh :class:`LevelNormalizer` (the samples a stream of it would give)."""
    normalizer = LevelNormalizer(target_db)
    return np.concatenate((normalizer.process(audio), normalizer.flush()))
