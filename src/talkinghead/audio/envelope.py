"""The speech envelope on the video frame grid: one RMS value per frame."""

import numpy as np


def speech_energy(audio: np.ndarray, sample_rate: int, num_frames: int, fps: float) -> np.ndarray:
    """Frame-aligned RMS ``(num_frames,)`` float32: frame t covers samples [t·sr/fps, (t+1)·sr/fps).

    Samples past the end of ``audio`` count as silence.
    """
    bounds = np.floor(np.arange(num_frames + 1) * (sample_rate / fps) + 1e-6).astype(np.int64)
    squares = np.zeros(bounds[-1] + 1)
    used = min(len(audio), bounds[-1])
    squares[1 : used + 1] = np.cumsum(np.asarray(audio[:used], dtype=np.float64) ** 2)
    squares[used + 1 :] = squares[used]
    lengths = np.maximum(np.diff(bounds), 1)
    return np.sqrt((squares[bounds[1:]] - squares[bounds[:-1]]) / lengths).astype(np.float32)
