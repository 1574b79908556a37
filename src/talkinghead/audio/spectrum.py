"""Long-term spectra of speech in octave bands, and the filters that change one into another.

A microphone, a room and a mix tilt the long-term spectrum of speech by ten decibels and more: the twelve public
recordings of docs/RESULTS.md (eleventh pass) carry up to 12 dB less of their power in the 2- and 4-kHz octaves
than the embedded corpus' espeak-ng voices (:data:`CORPUS_SPECTRUM_DB`; medians 5 and 9 dB less), and a network
trained on the corpus hears that tilt as different speech. :mod:`talkinghead.audio.equalizer` can bring a
recording's spectrum to the corpus' before stage 1.

A long-term spectrum here (:func:`long_term_spectrum_db`) is the power of a recording's speech frames in each
octave band of :data:`BAND_CENTRES_HZ` relative to their total, in dB: its shape, whatever its level. The
speech frames are those within the level control's :data:`~talkinghead.audio.level.FLOOR_DB` of the
95th-percentile frame level (not the noise in the pauses).
"""

import numpy as np
from scipy.signal import firwin2, minimum_phase

from talkinghead.audio.level import FLOOR_DB, GATE_DB, frame_levels_db
from talkinghead.conventions import FRAME_SAMPLES, SAMPLE_RATE

BAND_CENTRES_HZ = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)
"""Octave bands ``[c/√2, c·√2)`` whose powers are equalised; the last one ends at the Nyquist frequency, and the
spectrum below the first band's lower edge follows the first band's gain."""

CORPUS_SPECTRUM_DB = (-14.7, -7.4, -4.1, -5.8, -10.7, -13.5, -24.5)
"""Long-term spectrum of the embedded corpus' espeak-ng speech (its voices, rates and pitches): the mean power of
the 64 clips of ``make demo``'s corpus."""

FILTER_TAPS = 129
"""Length of the equalising FIR filter (8 ms at 16 kHz; its frequency resolution, 125 Hz, is the lowest band's)."""


def _band_edges() -> np.ndarray:
    """(bands, 2) lower and upper edge of each band of :data:`BAND_CENTRES_HZ` (Hz)."""
    centres = np.asarray(BAND_CENTRES_HZ)
    return np.stack((centres / np.sqrt(2.0), np.minimum(centres * np.sqrt(2.0), SAMPLE_RATE / 2)), axis=-1)


def band_powers(frames: np.ndarray) -> np.ndarray:
    """(n, 640) frames → (n, bands) power in each octave band of :data:`BAND_CENTRES_HZ` (Hann window)."""
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(FRAME_SAMPLES + 1)[:-1], axis=-1)) ** 2
    frequencies = np.fft.rfftfreq(FRAME_SAMPLES, 1.0 / SAMPLE_RATE)
    powers = [spectrum[:, (frequencies >= low) & (frequencies <= high)].sum(axis=-1) for low, high in _band_edges()]
    return np.stack(powers, axis=-1)


def relative_db(powers: np.ndarray) -> np.ndarray:
    """Band powers → dB relative to their total (a spectrum's shape, whatever its level)."""
    powers = np.maximum(np.asarray(powers, np.float64), 1e-30)
    return 10.0 * np.log10(powers / powers.sum(axis=-1, keepdims=True))


def speech_frames(levels_db: np.ndarray) -> np.ndarray:
    """Mask of the frames counted as speech: above the gate and within ``FLOOR_DB`` of the 95th-percentile level."""
    audible = np.isfinite(levels_db) & (levels_db > GATE_DB)
    if not audible.any():
        return audible
    return audible & (levels_db >= np.percentile(levels_db[audible], 95) - FLOOR_DB)


def long_term_spectrum_db(audio: np.ndarray) -> np.ndarray | None:
    """Long-term spectrum of a whole recording (16 kHz): mean band power of its speech frames, relative dB;
    None when no frame is speech."""
    whole = len(audio) // FRAME_SAMPLES * FRAME_SAMPLES
    frames = np.asarray(audio[:whole], np.float64).reshape(-1, FRAME_SAMPLES)
    speech = speech_frames(frame_levels_db(frames.ravel()))
    return relative_db(band_powers(frames[speech]).mean(axis=0)) if speech.any() else None


def _interpolated_filter(gains_db: np.ndarray) -> np.ndarray:
    """Minimum-phase taps whose response in dB is interpolated linearly in log-frequency between the bands'
    geometric middles (the last, half-octave band placed at its own middle) and held beyond the first and last."""
    middles = np.sqrt(_band_edges().prod(axis=-1))
    frequencies = np.linspace(0.0, SAMPLE_RATE / 2, 513)
    response_db = np.interp(np.log(np.maximum(frequencies, 1.0)), np.log(middles), gains_db)
    linear_phase = firwin2(2 * FILTER_TAPS - 1, frequencies, 10.0 ** (response_db / 10.0), fs=SAMPLE_RATE)
    return minimum_phase(linear_phase, half=True, n_fft=8192)  # the square root of the squared response


def band_response_db(taps: np.ndarray) -> np.ndarray:
    """A filter's power gain in each band of :data:`BAND_CENTRES_HZ` for a spectrum flat within the band, dB."""
    response = np.abs(np.fft.rfft(taps, FRAME_SAMPLES)) ** 2
    frequencies = np.fft.rfftfreq(FRAME_SAMPLES, 1.0 / SAMPLE_RATE)
    bands = [response[(frequencies >= low) & (frequencies <= high)].mean() for low, high in _band_edges()]
    return 10.0 * np.log10(np.maximum(bands, 1e-30))


def equalizing_filter(gains_db: np.ndarray, corrections: int = 2) -> np.ndarray:
    """Band gains (dB, one per :data:`BAND_CENTRES_HZ`) → minimum-phase FIR taps (:data:`FILTER_TAPS`).

    An interpolated response gives a band the average of its neighbours' gains over its flanks (2.3 dB short of
    a −12-dB band between −9 and −4), so the design's gains are corrected ``corrections`` times by what the
    filter's band response (:func:`band_response_db`) misses: within 0.5 dB for a microphone's colour."""
    design = np.asarray(gains_db, np.float64)
    taps = _interpolated_filter(design)
    for _ in range(corrections):
        design = design + (gains_db - band_response_db(taps))
        taps = _interpolated_filter(design)
    return taps
