"""Recording gain taken out of the speech before stage 1: a causal automatic gain control on 40-ms frames.

How loud a recording is depends on the microphone and the mixing, not on the speaker, yet both stage-1
networks hear it: the embedded corpus speaks at about :data:`CORPUS_LEVEL_DB` (its active-speech level) and
its head gestures follow the speech level in dBFS (:mod:`talkinghead.data.synthetic.motion_synthesis`), so a
recording 6 dB quieter than the corpus moves the head less than the same speech at the corpus level would.
:class:`LevelNormalizer` brings the active-speech level to a target before the audio reaches the encoders.

It is causal, so a stream and an offline run give the same samples (:func:`normalize_level` is the same
computation on a whole recording): per 40-ms video frame ``t`` (640 samples at 16 kHz),

* the frame's level ``r_t`` (dBFS RMS) counts as active speech when it is above ``gate_db`` and within
  ``relative_gate_db`` of the loudest frame of the last ``peak_frames`` frames (pauses and breaths, far below
  the syllables around them, do not pull the estimate down);
* the estimate ``L`` is the running mean of the active levels, started with ``prior_frames`` frames at the
  target (so the first syllable cannot set the gain alone) and, once ``memory_frames`` active frames are
  reached, an exponential average over that many frames (it follows a change of microphone or speaker);
* the gain is ``clip(target − L, ±max_gain_db)``, ramped linearly over each frame from the previous frame's
  gain (no steps in the waveform).

Within an utterance the syllables keep their relative loudness (the estimate moves by at most
``1 / (prior_frames + n)`` of a difference per frame); only the recording's overall gain goes.
"""

from collections import deque

import numpy as np

from talkinghead.conventions import FRAME_SAMPLES

CORPUS_LEVEL_DB = -21.0
"""Active-speech level of the embedded corpus' espeak-ng speech (dBFS RMS; measured −20.2 … −22.7 per clip)."""


class LevelNormalizer:
    """Causal gain control (module docstring): :meth:`process` chunks of any length, :meth:`flush` at the end.

    Args:
        target_db: the active-speech level to reach (dBFS RMS).
        gate_db, relative_gate_db, peak_frames: a frame is active speech above ``gate_db`` dBFS and above the
            loudest of the last ``peak_frames`` frames (itself included) minus ``relative_gate_db``.
        prior_frames: weight of the initial estimate (the target), in frames.
        memory_frames: number of active frames the estimate averages over at most.
        max_gain_db: largest boost or cut.
    """

    def __init__(
        self,
        target_db: float = CORPUS_LEVEL_DB,
        gate_db: float = -60.0,
        relative_gate_db: float = 15.0,
        peak_frames: int = 25,
        prior_frames: int = 2,
        memory_frames: int = 250,
        max_gain_db: float = 12.0,
    ) -> None:
        if prior_frames < 1 or memory_frames < prior_frames:
            raise ValueError(f"need 1 ≤ prior_frames ≤ memory_frames, got {prior_frames} and {memory_frames}")
        self.target_db = target_db
        self.gate_db = gate_db
        self.relative_gate_db = relative_gate_db
        self.recent_db: deque[float] = deque(maxlen=peak_frames)
        self.memory_frames = memory_frames
        self.max_gain_db = max_gain_db
        self.level_db = target_db
        self.weight = float(prior_frames)
        self.gain_db = 0.0
        self.pending = np.zeros(0, np.float32)

    def _gain_db(self, level_db: float) -> float:
        """Update the estimate with one whole frame's level; → the frame's gain (dB)."""
        self.recent_db.append(level_db)
        if level_db > self.gate_db and level_db > max(self.recent_db) - self.relative_gate_db:
            self.weight = min(self.weight + 1.0, float(self.memory_frames))
            self.level_db += (level_db - self.level_db) / self.weight
        return float(np.clip(self.target_db - self.level_db, -self.max_gain_db, self.max_gain_db))

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Append samples; → the normalised samples of every frame completed so far (whole frames, maybe none)."""
        self.pending = np.concatenate((self.pending, np.asarray(samples, np.float32).reshape(-1)))
        whole = len(self.pending) // FRAME_SAMPLES * FRAME_SAMPLES
        frames = self.pending[:whole].reshape(-1, FRAME_SAMPLES)
        self.pending = self.pending[whole:]
        power = np.mean(np.square(frames, dtype=np.float64), axis=1)
        levels = 10.0 * np.log10(np.maximum(power, 1e-20))
        gains = np.array([self.gain_db, *(self._gain_db(float(level)) for level in levels)])
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
