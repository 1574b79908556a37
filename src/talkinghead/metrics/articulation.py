"""Weight-free articulation and head-motion measurements on MediaPipe FaceMesh tracks of a video.

They judge a talking head from the outside, the same way for a generated and a real video, so the two can be
compared and no network weights are needed:

* **mouth opening** per frame: the distance of the inner-lip landmarks 13–14 over the face height 10–152
  (image-plane distances, so the value does not depend on the face's size in the frame;
  :func:`talkinghead.face.mouth.inner_lip_opening`);
* **lip-sync r**: the best Pearson r, over lags within ±2 frames, between the mouth opening and the speech's
  RMS envelope in 40-ms hops (one hop per frame at 25 fps). Real speakers score only 0.13–0.43 here: a mouth
  also shapes sounds it does not open for, so a higher value is not better beyond that range;
* **head motion**: the sum over the video of the standard deviations of the eye-line roll (radians, landmarks
  33–263), of the nose tip's (landmark 1) offset from the eye midpoint and of the eye midpoint's position —
  both per image axis, in inter-ocular distances (the video's median), so a face's size does not matter;
* against the real video of the same clip: Pearson r of the two openings frame by frame and the amplitude
  ratio (standard deviation generated / real).
"""

import numpy as np

from talkinghead.audio.envelope import speech_energy
from talkinghead.conventions import FPS, SAMPLE_RATE
from talkinghead.face.mouth import inner_lip_opening, lagged_correlations, pearson

RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263
NOSE_TIP = 1  # FaceMesh vertex at the tip of the nose
LIP_SYNC_MAX_LAG = 2  # frames


__all__ = [
    "head_motion",
    "head_motion_parts",
    "inner_lip_opening",
    "lip_sync_r",
    "opening_agreement",
    "speech_envelope",
]


def speech_envelope(audio: np.ndarray, num_frames: int) -> np.ndarray:
    """(num_frames,) RMS of each 40-ms frame of 16-kHz speech (:func:`talkinghead.audio.envelope.speech_energy`)."""
    return speech_energy(audio, SAMPLE_RATE, num_frames, FPS).astype(np.float64)


def lip_sync_r(opening: np.ndarray, envelope: np.ndarray, max_lag: int = LIP_SYNC_MAX_LAG) -> float:
    """Best r between the opening and the speech envelope over lags within ±``max_lag`` frames (module docstring)."""
    length = min(len(opening), len(envelope))
    opening, envelope = opening[:length], envelope[:length]
    return float(lagged_correlations(opening, envelope, max_lag).max())


def head_motion_parts(landmarks: np.ndarray) -> np.ndarray:
    """(T, ≥468, ≥2) landmarks → (5,) standard deviations over the video: eye-line roll (radians), the nose
    tip's offset from the eye midpoint (x, y) and the eye midpoint (x, y), in inter-ocular distances."""
    points = np.asarray(landmarks, dtype=np.float64)[..., :2]
    right, left = points[:, RIGHT_EYE_OUTER], points[:, LEFT_EYE_OUTER]
    eye_line = left - right
    roll = np.arctan2(eye_line[:, 1], eye_line[:, 0])
    inter_ocular = float(np.median(np.linalg.norm(eye_line, axis=-1)))
    middle = (left + right) / 2
    nose = (points[:, NOSE_TIP] - middle) / inter_ocular
    return np.array([np.std(roll), *np.std(nose, axis=0), *np.std(middle / inter_ocular, axis=0)])


def head_motion(landmarks: np.ndarray) -> float:
    """(T, ≥468, ≥2) landmarks → the summed standard deviations of roll and eye/nose positions (module docstring)."""
    return float(head_motion_parts(landmarks).sum())


def opening_agreement(generated: np.ndarray, real: np.ndarray) -> tuple[float, float]:
    """(Pearson r, amplitude ratio std(generated) / std(real)) of two openings over their common frames."""
    length = min(len(generated), len(real))
    generated, real = generated[:length], real[:length]
    spread = float(np.std(real))
    return pearson(generated, real), float(np.std(generated)) / spread if spread > 0 else float("nan")
