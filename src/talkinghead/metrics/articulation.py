"""Weight-free articulation and head-motion measurements on MediaPipe FaceMesh tracks of a video.

They judge a talking head from the outside, the same way for a generated and a real video, so the two can be
compared and no network weights are needed:

* **mouth opening** per frame: the distance of the inner-lip landmarks 13–14 over the face height 10–152
  (image-plane distances, so the value does not depend on the face's size in the frame);
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

from talkinghead.conventions import FPS, SAMPLE_RATE

UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
FOREHEAD, CHIN = 10, 152
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263
NOSE_TIP = 1
LIP_SYNC_MAX_LAG = 2  # frames


def inner_lip_opening(landmarks: np.ndarray) -> np.ndarray:
    """(T, ≥468, ≥2) FaceMesh landmarks → (T,) inner-lip opening over face height."""
    points = np.asarray(landmarks, dtype=np.float64)[..., :2]
    lips = np.linalg.norm(points[:, UPPER_INNER_LIP] - points[:, LOWER_INNER_LIP], axis=-1)
    height = np.linalg.norm(points[:, FOREHEAD] - points[:, CHIN], axis=-1)
    return lips / height


def speech_envelope(audio: np.ndarray, num_frames: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(N,) mono speech → (num_frames,) RMS of each frame's hop (``sample_rate / FPS`` samples; zero past the end)."""
    hop = sample_rate // FPS
    samples = np.zeros(num_frames * hop)
    usable = np.asarray(audio, dtype=np.float64)[: len(samples)]
    samples[: len(usable)] = usable
    return np.sqrt((samples.reshape(num_frames, hop) ** 2).mean(axis=1))


def pearson_r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equally long series; 0 when either is constant."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a, b = a - a.mean(), b - b.mean()
    norm = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / norm) if norm > 0 else 0.0


def lagged_pearson_r(a: np.ndarray, b: np.ndarray, lag: int) -> float:
    """r between ``a[t + lag]`` and ``b[t]`` over the frames both have."""
    if lag >= 0:
        return pearson_r(a[lag:], b[: len(b) - lag] if lag else b)
    return pearson_r(a[:lag], b[-lag:])


def lip_sync_r(opening: np.ndarray, envelope: np.ndarray, max_lag: int = LIP_SYNC_MAX_LAG) -> float:
    """Best r between the opening and the speech envelope over lags within ±``max_lag`` frames (module docstring)."""
    length = min(len(opening), len(envelope))
    opening, envelope = opening[:length], envelope[:length]
    return max(lagged_pearson_r(opening, envelope, lag) for lag in range(-max_lag, max_lag + 1))


def head_motion(landmarks: np.ndarray) -> float:
    """(T, ≥468, ≥2) landmarks → the summed standard deviations of roll and eye/nose positions (module docstring)."""
    points = np.asarray(landmarks, dtype=np.float64)[..., :2]
    right, left = points[:, RIGHT_EYE_OUTER], points[:, LEFT_EYE_OUTER]
    eye_line = left - right
    roll = np.arctan2(eye_line[:, 1], eye_line[:, 0])
    inter_ocular = float(np.median(np.linalg.norm(eye_line, axis=-1)))
    middle = (left + right) / 2
    nose = (points[:, NOSE_TIP] - middle) / inter_ocular
    return float(np.std(roll) + np.std(nose, axis=0).sum() + np.std(middle / inter_ocular, axis=0).sum())


def opening_agreement(generated: np.ndarray, real: np.ndarray) -> tuple[float, float]:
    """(Pearson r, amplitude ratio std(generated) / std(real)) of two openings over their common frames."""
    length = min(len(generated), len(real))
    generated, real = generated[:length], real[:length]
    spread = float(np.std(real))
    return pearson_r(generated, real), float(np.std(generated)) / spread if spread > 0 else float("nan")
