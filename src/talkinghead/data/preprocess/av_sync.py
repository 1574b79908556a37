"""Audio/video offset of a clip: SyncNet when weights are given, else the speech envelope against the lips.

Convention (SyncNet's, :mod:`talkinghead.models.syncnet`): an offset of ``o`` frames means the lips of
video frame ``v`` show the sound of frame ``v − o`` (positive: the video lags the audio). Shifting the
audio ``o`` frames later (:func:`shift_audio`) fixes it.

* ``syncnet``: the arg-min over ±:data:`~talkinghead.models.syncnet.MAX_OFFSET` frames of SyncNet's mean
  embedding distance on lower-face crops cut from the clip's 256² crops
  (:func:`~talkinghead.models.syncnet.sync_scores`); confidence = LSE-C (median − minimum distance).
* ``envelope`` (weight-free): the lag within ±:data:`ENVELOPE_MAX_LAG` frames that maximises the Pearson
  r between the speech level (RMS per 40-ms video frame, in dB, floored :data:`ENVELOPE_FLOOR_DB` below
  the clip's loudest frame) and the tracked inner-lip opening (:func:`talkinghead.face.mouth.
  inner_lip_opening`); confidence = that r. On the synthetic round-trip clips the true lag wins with
  r 0.56–0.75; on real speakers the opening follows the sound loosely (closed-mouth consonants, lips
  moving before the voice starts), so the envelope estimate is only trusted above a conservative r
  (:attr:`AVSyncConfig.min_envelope_r`). A clip whose level varies less than :data:`MIN_LEVEL_STD_DB`
  or whose opening varies less than :data:`MIN_OPENING_STD` has nothing to align: offset 0, confidence 0
  (on 2-s clips such flat signals still reach r ≈ 0.45 by chance).
"""

from dataclasses import dataclass

import numpy as np
import torch

from talkinghead.audio.envelope import speech_energy
from talkinghead.conventions import FPS, FRAME_SAMPLES, SAMPLE_RATE
from talkinghead.face.mouth import inner_lip_opening, lagged_correlations
from talkinghead.models.syncnet import SyncNetwork, crop_boxes, crop_face, sync_scores, syncnet_mfcc

ENVELOPE_MAX_LAG = 6  # frames searched each way: 240 ms, under one syllable period (≈ 200–250 ms)
ENVELOPE_FLOOR_DB = 30.0  # about speech's dynamic range: pauses and room noise are one closed-mouth level
MIN_LEVEL_STD_DB = 3.0  # below: no speech rhythm to align (a steady tone, music bed, silence)
MIN_OPENING_STD = 0.003  # of the face height; below: the mouth does not move beyond landmark jitter
ENVELOPE = "envelope"
SYNCNET = "syncnet"


@dataclass(frozen=True)
class AVSyncConfig:
    """The out-of-sync filter (docs/PREPROCESSING.md, "Audio/video offset").

    Attributes:
        max_offset: largest tolerated |offset| in frames; beyond it a trusted estimate rejects the clip (or
            shifts its audio with ``fix``). 2 frames (80 ms) is about what viewers tolerate.
        min_envelope_r: the envelope estimate is trusted only when its r reaches this (0.5: the synthetic
            clips reach 0.56–0.75, real clips with a weak envelope fall below and are kept as they are).
        min_syncnet_confidence: the SyncNet estimate is trusted only from this LSE-C on (3.0, well below the
            6.9–7.8 of real videos in Wav2Lip's Table 1; lower values mean no clear distance minimum).
        fix: shift the audio of an out-of-sync clip instead of rejecting it.
        enabled: estimate at all (``False``: no estimate, no meta.json fields).
    """

    max_offset: int = 2
    min_envelope_r: float = 0.5
    min_syncnet_confidence: float = 3.0
    fix: bool = False
    enabled: bool = True

    def needs_fix(self, offset: "AVOffset") -> bool:
        """Whether a trusted estimate is beyond ``max_offset`` (the clip is rejected, or shifted with ``fix``)."""
        return abs(offset.frames) > self.max_offset and offset.trusted(self)


@dataclass(frozen=True)
class AVOffset:
    frames: int
    method: str
    confidence: float

    def trusted(self, config: AVSyncConfig) -> bool:
        threshold = config.min_syncnet_confidence if self.method == SYNCNET else config.min_envelope_r
        return self.confidence >= threshold

    def describe(self) -> str:
        measure = "LSE-C" if self.method == SYNCNET else "r"
        return f"{self.frames} frames ({self.method}, {measure}={self.confidence:.2f})"


def speech_level_db(audio: np.ndarray, num_frames: int) -> np.ndarray:
    """(num_frames,) RMS level in dB of each 40-ms video frame, floored :data:`ENVELOPE_FLOOR_DB` below the peak."""
    level = speech_energy(audio, SAMPLE_RATE, num_frames, FPS).astype(np.float64)
    floor = max(float(level.max()), 1e-12) * 10.0 ** (-ENVELOPE_FLOOR_DB / 20.0)
    return 20.0 * np.log10(np.maximum(level, floor))


def envelope_offset(landmarks: np.ndarray, audio: np.ndarray, max_lag: int = ENVELOPE_MAX_LAG) -> AVOffset:
    """Weight-free offset from MediaPipe landmarks (T, 478, 2+) and the clip's 16-kHz audio (module doc)."""
    opening = inner_lip_opening(landmarks)
    level = speech_level_db(audio, len(opening))
    if level.std() < MIN_LEVEL_STD_DB or opening.std() < MIN_OPENING_STD:
        return AVOffset(0, ENVELOPE, 0.0)
    lag = min(max_lag, len(opening) // 4)
    correlations = lagged_correlations(opening, level, lag)
    best = int(np.argmax(correlations))
    return AVOffset(best - lag, ENVELOPE, round(float(correlations[best]), 4))


def syncnet_offset(network: SyncNetwork, crops: np.ndarray, landmarks: np.ndarray, audio: np.ndarray) -> AVOffset:
    """SyncNet's offset from the clip's 256² crops (T, 256, 256, 3), their landmarks (T, N, 2+) and audio."""
    boxes = crop_boxes(landmarks)
    faces = np.stack([crop_face(frame, box) for frame, box in zip(crops, boxes, strict=True)])
    with torch.inference_mode():
        scores = sync_scores(network, faces, syncnet_mfcc(audio))
    return AVOffset(scores.offset, SYNCNET, round(scores.lse_c, 4))


def shift_audio(audio: np.ndarray, start: int, end: int, offset: int) -> np.ndarray:
    """Samples of video frames ``[start, end)`` with the audio moved ``offset`` frames later (zeros outside)."""
    hop = FRAME_SAMPLES
    first, last = (start - offset) * hop, (end - offset) * hop
    span = np.zeros(last - first, np.float32)
    lo, hi = max(first, 0), min(last, len(audio))
    if hi > lo:
        span[lo - first : hi - first] = audio[lo:hi]
    return span
