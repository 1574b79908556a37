"""Recording colour taken out of the speech before stage 1: a causal long-term spectral equaliser on 40-ms frames.

A microphone, a room and a mix tilt the long-term spectrum of speech (:mod:`talkinghead.audio.spectrum`), and the
stage-1 networks hear that tilt as different speech. :class:`SpectrumEqualizer` brings a recording's long-term
spectrum, in octave bands, to a target (by default :data:`~talkinghead.audio.spectrum.CORPUS_SPECTRUM_DB`, the
embedded corpus') and keeps the power: the level is :mod:`talkinghead.audio.level`'s business, and the equaliser
runs before it. The pipeline uses it on request (``GenerationParams.speech_spectrum_db``,
``talkinghead-generate --equalize-speech``): on real recordings, darker than the corpus, it opens the mouth as far
as the real speakers' but lets the mouth follow the noise of a recording's pauses, which it raises with the
speech (docs/RESULTS.md, eleventh pass).

It is the spectral counterpart of the level control and causal in the same way, so a stream and an offline run
give the same samples (:func:`equalize_spectrum` is the same computation on a whole recording). Per 40-ms video
frame (640 samples at 16 kHz):

* the frame's power in each octave band (Hann window, one FFT) is remembered with its level when the level is
  above the level control's gate, the last ``memory_frames`` of them (10 s);
* the estimate is the long-term spectrum of the remembered speech frames, averaged in dB with the target at the
  weight of ``prior_frames`` frames (so the first syllables cannot set it alone);
* the wanted gain of a band is ``target − estimate``, offset so that the estimated power is kept and clipped to
  ``±max_gain_db``; each band's gain moves towards it by at most ``step_db`` per frame, and stays put while it
  would move by less than ``hold_db``;
* the gains become a minimum-phase FIR filter (:func:`~talkinghead.audio.spectrum.equalizing_filter`: no delay
  of the speech against the video, unlike a linear-phase filter's half length), and each frame is filtered by the
  previous frame's filter and its own, cross-faded linearly over the frame (no steps in the waveform).

The gains are in octave bands, broad enough that a microphone's tilt and resonances are taken out while a voice's
formants, which move from syllable to syllable within a band, are not: the speech keeps what it says.
"""

from collections import deque

import numpy as np

from talkinghead.audio.level import GATE_DB, frame_levels_db
from talkinghead.audio.spectrum import (
    BAND_CENTRES_HZ,
    CORPUS_SPECTRUM_DB,
    band_powers,
    equalizing_filter,
    relative_db,
    speech_frames,
)
from talkinghead.conventions import FRAME_SAMPLES

CROSSFADE = np.arange(1, FRAME_SAMPLES + 1) / FRAME_SAMPLES
"""Weight of a frame's own filter over its samples (the previous frame's filter has the rest)."""


class SpectrumEqualizer:
    """Causal octave-band equaliser (module docstring): :meth:`process` chunks of any length, :meth:`flush` at the end.

    Args:
        target_db: the long-term spectrum to reach, dB per band of :data:`BAND_CENTRES_HZ` (only its shape counts).
        prior_frames: weight of the target in the estimate, in speech frames.
        memory_frames: number of audible frames remembered.
        max_gain_db: largest boost or cut of a band.
        step_db: largest change of a band's gain from one frame to the next.
        hold_db: the filter is redesigned only when a band's gain would move by at least this much.
    """

    def __init__(
        self,
        target_db: tuple[float, ...] = CORPUS_SPECTRUM_DB,
        prior_frames: int = 5,
        memory_frames: int = 250,
        max_gain_db: float = 12.0,
        step_db: float = 0.5,
        hold_db: float = 0.1,
    ) -> None:
        if len(target_db) != len(BAND_CENTRES_HZ):
            raise ValueError(f"target_db needs {len(BAND_CENTRES_HZ)} bands, got {len(target_db)}")
        if prior_frames < 1 or memory_frames < 1:
            raise ValueError(f"need prior_frames ≥ 1 and memory_frames ≥ 1, got {prior_frames} and {memory_frames}")
        self.target_db = relative_db(10.0 ** (np.asarray(target_db, np.float64) / 10.0))
        self.prior_frames = prior_frames
        self.levels_db: deque[float] = deque(maxlen=memory_frames)
        self.powers: deque[np.ndarray] = deque(maxlen=memory_frames)
        self.max_gain_db, self.step_db, self.hold_db = max_gain_db, step_db, hold_db
        self.gains_db = np.zeros(len(BAND_CENTRES_HZ))
        self.taps = equalizing_filter(self.gains_db)
        self.history = np.zeros(len(self.taps) - 1)
        self.pending = np.zeros(0, np.float32)

    def _wanted_db(self) -> np.ndarray:
        """Band gains that bring the remembered speech's spectrum to the target, its power kept."""
        if not self.levels_db:
            return np.zeros(len(BAND_CENTRES_HZ))
        speech = speech_frames(np.fromiter(self.levels_db, float))
        count = int(speech.sum())
        powers = np.stack(self.powers)[speech].mean(axis=0)
        estimate = (self.prior_frames * self.target_db + count * relative_db(powers)) / (self.prior_frames + count)
        wanted = self.target_db - estimate
        shape = 10.0 ** (estimate / 10.0)
        kept = wanted - 10.0 * np.log10(np.sum(shape * 10.0 ** (wanted / 10.0)) / np.sum(shape))
        return np.clip(kept, -self.max_gain_db, self.max_gain_db)

    def _filter(self, frame: np.ndarray, taps: np.ndarray) -> np.ndarray:
        return np.convolve(np.concatenate((self.history, frame)), taps, mode="valid")

    def _frame(self, frame: np.ndarray, level_db: float) -> np.ndarray:
        """Update the estimate with one whole frame; → the frame equalised, cross-faded between the filters."""
        if np.isfinite(level_db) and level_db > GATE_DB:
            self.levels_db.append(level_db)
            self.powers.append(band_powers(frame[None])[0])
        wanted = self._wanted_db()
        gains = np.clip(wanted, self.gains_db - self.step_db, self.gains_db + self.step_db)
        previous = self.taps
        if np.abs(gains - self.gains_db).max() >= self.hold_db:
            self.gains_db, self.taps = gains, equalizing_filter(gains)
        old = self._filter(frame, previous)
        out = old if self.taps is previous else old + (self._filter(frame, self.taps) - old) * CROSSFADE
        self.history = np.concatenate((self.history, frame))[len(frame) :]
        return out

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Append samples; → the equalised samples of every frame completed so far (whole frames, maybe none)."""
        self.pending = np.concatenate((self.pending, np.asarray(samples, np.float32).reshape(-1)))
        whole = len(self.pending) // FRAME_SAMPLES * FRAME_SAMPLES
        frames = self.pending[:whole].astype(np.float64).reshape(-1, FRAME_SAMPLES)
        self.pending = self.pending[whole:]
        levels = frame_levels_db(frames.ravel())
        out = [self._frame(frame, float(level)) for frame, level in zip(frames, levels, strict=True)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)

    def flush(self) -> np.ndarray:
        """The samples of the last, partial frame through the last frame's filter."""
        rest, self.pending = self.pending.astype(np.float64), np.zeros(0, np.float32)
        return self._filter(rest, self.taps).astype(np.float32) if len(rest) else np.zeros(0, np.float32)


def equalize_spectrum(audio: np.ndarray, target_db: tuple[float, ...] = CORPUS_SPECTRUM_DB) -> np.ndarray:
    """A whole recording through a fresh :class:`SpectrumEqualizer` (the samples a stream of it would give)."""
    equalizer = SpectrumEqualizer(target_db)
    return np.concatenate((equalizer.process(audio), equalizer.flush()))
