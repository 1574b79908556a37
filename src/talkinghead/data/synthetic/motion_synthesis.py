"""Non-lip motion for the embedded corpus: blinks, brow raises and head pose that follows speech energy.

All functions are deterministic given their ``numpy.random.Generator`` and return float32 arrays at
``fps`` frames per second; curves are sampled at frame centres ``(k + 0.5) / fps``. Blendshape curves are
``(T, 52)`` in ARKit order with only their own shapes non-zero, so they combine with the viseme curves by
addition (then clip to [0, 1]).

* Blinks: both eyes together, the first 0.2-4 s into the clip, each next one 2-6 s (uniform) after
  the previous one; a blink closes in 60-80 ms, stays closed 10-30 ms and opens in 80-140 ms
  (150-250 ms in all, opening slower than closing, as in real blinks).
* Brows: a raise of ``browInnerUp`` (and less of ``browOuterUp*``) on a random share of the stressed
  syllables, starting shortly before the vowel, rising in about 0.1 s and falling in about 0.3 s.
* Head pose ``(pitch, yaw, roll, tx, ty, tz)`` (radians, cm): a per-clip base pose, a slow drift and
  faster gestures (low-pass filtered Gaussian noise) whose amplitude follows the smoothed speech level
  (30 % of full in silence), softly limited (``limit · tanh(x / limit)``) to yaw ±20°, pitch ±12°,
  roll ±8°, tx ±3 cm, ty/tz ±2 cm.

Head-motion amplitudes are calibrated against real speakers, measured as ``talkinghead-evaluate``'s head
motion (:func:`talkinghead.metrics.articulation.head_motion`: eye-line roll, nose offset, eye-midpoint
position) on 71 four-second segments of 18 public talking-head clips (``docs/RESULTS.md``): the medians are
roll 0.028 rad, nose offset 0.022 / 0.023 and eye midpoint 0.066 / 0.041 inter-ocular distances (x / y).
The first corpus's rotations were within 1.4× of them; its eye midpoint moved 0.029 / 0.025, so the drift
and gesture spreads of tx and ty are 3.5× and 2× theirs (a real speaker's head also sways and leans, not only
turns).
"""

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter1d

from talkinghead.audio.envelope import speech_energy
from talkinghead.audio.speech_synthesis import PhonemeEvent
from talkinghead.face.expression_basis import ARKIT_BLENDSHAPES

BLINK_INTERVAL_S = (2.0, 6.0)
"""Range of the time between the starts of consecutive blinks (s)."""

POSE_LIMITS = np.array([np.radians(12.0), np.radians(20.0), np.radians(8.0), 3.0, 2.0, 2.0])
"""Largest |pitch|, |yaw|, |roll| (radians) and |tx|, |ty|, |tz| (cm) of :func:`head_pose_trajectory`."""

_FIRST_BLINK_S = (0.2, 4.0)
_BLINK_CLOSE_S = (0.06, 0.08)
_BLINK_HOLD_S = (0.01, 0.03)
_BLINK_OPEN_S = (0.08, 0.14)

_BROW_LEAD_S = 0.05
_BROW_RISE_S = 0.1
_BROW_FALL_S = 0.3

# Per channel (pitch, yaw, roll in degrees; tx, ty, tz in cm): standard deviations of the base pose,
# the drift and the gestures at full speech level.
_POSE_BASE_STD = np.array([3.0, 5.0, 2.0, 0.3, 0.3, 0.5])
_POSE_DRIFT_STD = np.array([2.5, 4.0, 1.5, 0.875, 0.4, 0.5])
_POSE_GESTURE_STD = np.array([4.0, 5.0, 2.5, 0.7, 0.5, 0.3])
_DEGREE_CHANNELS = 3
_DRIFT_SMOOTHING_S = 1.5
_GESTURE_SMOOTHING_S = 0.25
_LEVEL_SMOOTHING_S = 0.15
_SILENT_GESTURE_SHARE = 0.3
_SILENCE_DB, _LOUD_DB = -50.0, -20.0  # speech level 0 and 1 (dB re full scale RMS)


def blink_curves(num_frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Blink curves ``(num_frames, 52)``: ``eyeBlinkLeft`` = ``eyeBlinkRight`` in [0, 1], zero elsewhere."""
    times = (np.arange(num_frames) + 0.5) / fps
    closure = np.zeros(num_frames)
    onset = rng.uniform(*_FIRST_BLINK_S)
    while onset < num_frames / fps:
        close, hold, open_ = rng.uniform(*_BLINK_CLOSE_S), rng.uniform(*_BLINK_HOLD_S), rng.uniform(*_BLINK_OPEN_S)
        depth = rng.uniform(0.9, 1.0)
        closure = np.maximum(closure, depth * _blink_shape(times - onset, close, hold, open_))
        onset += rng.uniform(*BLINK_INTERVAL_S)
    curves = np.zeros((num_frames, len(ARKIT_BLENDSHAPES)), np.float32)
    for name in ("eyeBlinkLeft", "eyeBlinkRight"):
        curves[:, ARKIT_BLENDSHAPES.index(name)] = closure
    return curves


def brow_curves(
    phonemes: Sequence[PhonemeEvent], num_frames: int, fps: float, rng: np.random.Generator, probability: float = 0.6
) -> np.ndarray:
    """Brow-raise curves ``(num_frames, 52)`` on stressed syllables (each raised with ``probability``).

    ``browInnerUp`` peaks at 0.25-0.6 per raise, ``browOuterUp{Left,Right}`` at 50-90 % of that;
    overlapping raises take their maximum.
    """
    times = (np.arange(num_frames) + 0.5) / fps
    inner = np.zeros(num_frames)
    outer = np.zeros(num_frames)
    for phoneme in phonemes:
        if not phoneme.stressed or rng.random() >= probability:
            continue
        amplitude = rng.uniform(0.25, 0.6)
        outer_share = rng.uniform(0.5, 0.9)
        pulse = _asymmetric_bump(times - (phoneme.start - _BROW_LEAD_S + _BROW_RISE_S), _BROW_RISE_S, _BROW_FALL_S)
        inner = np.maximum(inner, amplitude * pulse)
        outer = np.maximum(outer, amplitude * outer_share * pulse)
    curves = np.zeros((num_frames, len(ARKIT_BLENDSHAPES)), np.float32)
    curves[:, ARKIT_BLENDSHAPES.index("browInnerUp")] = inner
    for name in ("browOuterUpLeft", "browOuterUpRight"):
        curves[:, ARKIT_BLENDSHAPES.index(name)] = outer
    return curves


def head_pose_trajectory(
    audio: np.ndarray, sample_rate: int, num_frames: int, fps: float, rng: np.random.Generator
) -> np.ndarray:
    """Head pose ``(num_frames, 6)``: pitch, yaw, roll (radians), tx, ty, tz (cm); see the module doc."""
    if num_frames == 0:
        return np.zeros((0, 6), np.float32)
    rms = speech_energy(audio, sample_rate, num_frames, fps)
    level_db = 20.0 * np.log10(np.maximum(rms, 1e-10))
    level = np.clip((level_db - _SILENCE_DB) / (_LOUD_DB - _SILENCE_DB), 0.0, 1.0)
    level = gaussian_filter1d(level, _LEVEL_SMOOTHING_S * fps, mode="nearest")
    gesture_scale = _SILENT_GESTURE_SHARE + (1.0 - _SILENT_GESTURE_SHARE) * level
    base = rng.normal(size=6) * _POSE_BASE_STD
    drift = _smooth_noise(rng, num_frames, _DRIFT_SMOOTHING_S * fps) * _POSE_DRIFT_STD
    gesture = _smooth_noise(rng, num_frames, _GESTURE_SMOOTHING_S * fps) * _POSE_GESTURE_STD
    pose = base + drift + gesture * gesture_scale[:, None]
    pose[:, :_DEGREE_CHANNELS] = np.radians(pose[:, :_DEGREE_CHANNELS])
    return (POSE_LIMITS * np.tanh(pose / POSE_LIMITS)).astype(np.float32)


def _blink_shape(t: np.ndarray, close: float, hold: float, open_: float) -> np.ndarray:
    """Lid closure of one blink starting at t = 0: raised-cosine close, hold, raised-cosine open."""
    closing = 0.5 - 0.5 * np.cos(np.pi * np.clip(t / close, 0.0, 1.0))
    opening = 0.5 + 0.5 * np.cos(np.pi * np.clip((t - close - hold) / open_, 0.0, 1.0))
    return np.where(t < close + hold, closing, opening) * (t > 0)


def _asymmetric_bump(t: np.ndarray, rise: float, fall: float) -> np.ndarray:
    """A smooth bump peaking at t = 0 (value 1), Gaussian with width ``rise`` before and ``fall`` after."""
    width = np.where(t < 0, rise, fall)
    return np.exp(-0.5 * (t / (0.5 * width)) ** 2)


def _smooth_noise(rng: np.random.Generator, num_frames: int, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise ``(num_frames, 6)`` with unit variance (away from the ends)."""
    white = rng.normal(size=(num_frames, 6))
    return gaussian_filter1d(white, sigma, axis=0, mode="reflect") * np.sqrt(2.0 * np.sqrt(np.pi) * sigma)
