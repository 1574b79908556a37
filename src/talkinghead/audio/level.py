"""Recording gain taken out of the speech before stage 1: a causal automatic gain control on 40-ms frames.

How loud a recording is depends on the microphone and the mixing, not on the speaker, yet both stage-1
networks hear it: the embedded corpus speaks at about :data:`CORPUS_LEVEL_DB` (its active-speech level) and
its head gestures follow the speech level in dBFS (:mod:`talkinghead.data.synthetic.motion_synthesis`), so a
recording 6 dB quieter than the corpus moves the head less than the same speech at the corpus level would.
:class:`LevelNormalizer` brings the active-speech level to a target before the audio reaches the encoders.

The active-speech level (:func:`active_level_db`) is the **mean power** of the frames within
``relative_gate_db`` of the loudest frame, in dBFS — the loud syllables set it, as in ITU-T P.56's active speech
level, so pauses, breaths and background noise (tens of dB below the speech) carry no weight. A mean of the
frames' levels in dB would not do: it counts a quiet frame as much as a loud one, so it reads real speech, whose
consonants and decays spread over 30 dB, several dB lower than the corpus' even syllables, and a recording
opening on 3 s of room noise at −54 dBFS as 15 dB quieter than its speech is.

It is causal, so a stream and an offline run give the same samples (:func:`normalize_level` is the same
computation on a whole recording): per 40-ms video frame ``t`` (640 samples at 16 kHz),

* the frame's level (dBFS RMS) is remembered when it is above ``gate_db`` (digital silence is not), the last
  ``memory_frames`` of them (it follows a change of microphone or speaker);
* the estimate ``L`` is the active-speech level of the remembered frames, averaged in dB with the target at the
  weight of ``prior_frames`` active frames (so the first syllable cannot set the gain alone). Frames of noise
  heard before any speech count until the speech arrives and drop out with its first loud frame, which moves
  the gate;
* the gain is ``clip(target − L, ±max_gain_db)``, ramped linearly over each frame from the previous frame's
  gain (no steps in the waveform).

Within an utterance the syllables keep their relative loudness; only the recording's overall gain goes.
"""

from collections import deque

import numpy as np

from talkinghead.conventions import FRAME_SAMPLES

CORPUS_LEVEL_DB = -18.0
"""Active-speech level (:func:`active_level_db`) of the embedded corpus' espeak-ng speech in dBFS: median of the
64 clips of ``make demo``'s corpus −18.0 (−20.5 … −15.5 per clip; −21 by a mean of frame levels in dB)."""

GATE_DB = -60.0
"""Frames at or below this level (dBFS RMS) are silence: never part of the active-speech level."""

RELATIVE_GATE_DB = 15.0
"""Frames more than this below the loudest frame are not active speech (pauses, breaths, noise)."""


def frame_levels_db(audio: np.ndarray) -> np.ndarray:
    """RMS level (dBFS) of each whole 40-ms frame of 16-kHz audio."""
    whole = len(audio) // FRAME_SAMPLES * FRAME_SAMPLES
    frames = np.asarray(audio[:whole], np.float64).reshape(-1, FRAME_SAMPLES)
    return 10.0 * np.log10(np.maximum(np.mean(np.square(frames), axis=1), 1e-20))


def _active_power(levels_db: np.ndarray, relative_gate_db: float) -> tuple[float, int]:
    """Summed power and count of the levels within ``relative_gate_db`` of the loudest."""
    active = levels_db[levels_db > levels_db.max() - relative_gate_db]
    return float(np.sum(10.0 ** (active / 10.0))), len(active)


def active_level_db(
    audio: np.ndarray, gate_db: float = GATE_DB, relative_gate_db: float = RELATIVE_GATE_DB
) -> float | None:
    """Active-speech level of a whole recording (module docstring) in dBFS; None when every frame is silence."""
    levels = frame_levels_db(audio)
    levels = levels[levels > gate_db]
    if not len(levels):
        return None
    power, count = _active_power(levels, relative_gate_db)
    return float(10.0 * np.log10(power / count))


class LevelNormalizer:
    """Causal gain control (module docstring): :meth:`process` chunks of any length, :meth:`flush` at the end.

    Args:
        target_db: the active-speech level to reach (dBFS RMS).
        gate_db: frames at or below this level are silence and never remembered.
        relative_gate_db: a remembered frame is active speech within this of the loudest remembered frame.
        prior_frames: weight of the initial estimate (the target), in frames.
        memory_frames: number of frames above ``gate_db`` remembered.
        max_gain_db: largest boost or cut.
    """

    def __init__(
        self,
        target_db: float = CORPUS_LEVEL_DB,
        gate_db: float = GATE_DB,
        relative_gate_db: float = RELATIVE_GATE_DB,
        prior_frames: int = 2,
        memory_frames: int = 250,
        max_gain_db: float = 12.0,
    ) -> None:
        if prior_frames < 1 or memory_frames < 1:
            raise ValueError(f"need prior_frames ≥ 1 and memory_frames ≥ 1, got {prior_frames} and {memory_frames}")
        self.target_db = target_db
        self.gate_db = gate_db
        self.relative_gate_db = relative_gate_db
        self.prior_frames = prior_frames
        self.remembered_db: deque[float] = deque(maxlen=memory_frames)
        self.max_gain_db = max_gain_db
        self.level_db = target_db
        self.gain_db = 0.0
        self.pending = np.zeros(0, np.float32)

    def _gain_db(self, level_db: float) -> float:
        """Update the estimate with one whole frame's level; → the frame's gain (dB)."""
        if level_db > self.gate_db:
            self.remembered_db.append(level_db)
            power, count = _active_power(np.fromiter(self.remembered_db, float), self.relative_gate_db)
            active_db = 10.0 * np.log10(power / count)
            weights = self.prior_frames + count
            self.level_db = float((self.prior_frames * self.target_db + count * active_db) / weights)
        return float(np.clip(self.target_db - self.level_db, -self.max_gain_db, self.max_gain_db))

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Append samples; → the normalised samples of every frame completed so far (whole frames, maybe none)."""
        self.pending = np.concatenate((self.pending, np.asarray(samples, np.float32).reshape(-1)))
        whole = len(self.pending) // FRAME_SAMPLES * FRAME_SAMPLES
        frames = self.pending[:whole].reshape(-1, FRAME_SAMPLES)
        self.pending = self.pending[whole:]
        gains = np.array([self.gain_db, *(self._gain_db(float(level)) for level in frame_levels_db(frames.ravel()))])
        self.gain_db = float(gains[-1])
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
