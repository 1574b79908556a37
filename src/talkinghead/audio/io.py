"""Speech loading: any rate, channel count and common container → 16 kHz mono float32.

VividTalk (§3.2) feeds "a pre-trained audio extractor [1] (wav2vec 2.0)", which expects 16 kHz mono; the
weight-free mel encoder uses the same rate, so every audio input of the project goes through
:func:`load_audio`.

Decoding: soundfile (libsndfile) first, which reads WAV/FLAC/OGG and the other formats libsndfile
recognises by content, whatever the extension (MP3 too since libsndfile 1.1); when it cannot open the
file, PyAV (bundled FFmpeg) decodes the first audio stream of any container it knows: MP3, M4A/AAC, Opus,
the audio track of a video. Integer samples are scaled to [-1, 1) (float samples are kept as stored),
channels are downmixed by their mean and the rate is converted by :func:`resample` (windowed sinc, zero
phase).

Errors are :class:`AudioError` with a one-line message naming the file and the problem: missing file, empty
file, not decodable or no audio stream, 0 samples, shorter than one video frame, NaN/infinite samples, or
silent-only (peak below :data:`SILENCE_PEAK`, i.e. -80 dBFS).

Frame convention (shared with the data module and the encoders): video frame ``t`` covers the samples
``[t·sr/fps, (t+1)·sr/fps)``, i.e. ``[t·640, (t+1)·640)`` at 25 fps and 16 kHz, so a signal of ``S``
samples has ``T = floor(S·fps/sr)`` whole frames (:func:`num_video_frames`); a partial last frame is dropped.
"""

import math
import os
from pathlib import Path

import av
import numpy as np
import scipy.signal
import soundfile as sf

from talkinghead.conventions import FPS, SAMPLE_RATE

SILENCE_PEAK = 1e-4
RESAMPLE_ZERO_CROSSINGS = 6  # sinc lobes kept on each side of the anti-aliasing filter's centre
RESAMPLE_ROLLOFF = 0.99  # its cutoff as a fraction of the lower rate's Nyquist frequency


class AudioError(ValueError):
    """An audio input that cannot be used; the message is one line naming the file and the problem."""


def _error(path: str | os.PathLike, problem: str) -> AudioError:
    return AudioError(f"audio {str(path)!r}: {' '.join(str(problem).split())}")


def num_video_frames(num_samples: int, fps: float = FPS, sample_rate: int = SAMPLE_RATE) -> int:
    """Whole video frames in ``num_samples`` (floor: frame ``t`` needs all of ``[t·sr/fps, (t+1)·sr/fps)``)."""
    return max(0, math.floor(num_samples * fps / sample_rate + 1e-6))


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE, fps: float = FPS) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sample_rate`` (see the module docstring); raises :class:`AudioError`.

    ``fps`` only sets the minimum length (one video frame, ``sample_rate / fps`` samples).
    """
    path = Path(path)
    if not path.is_file():
        raise _error(path, "no such file")
    if path.stat().st_size == 0:
        raise _error(path, "empty file (0 bytes)")
    try:
        channels, rate = _read_soundfile(path)
    except sf.SoundFileError:
        channels, rate = _read_pyav(path)
    mono = channels.mean(axis=0, dtype=np.float64).astype(np.float32)
    if mono.size == 0:
        raise _error(path, "no samples (0-length audio)")
    if rate != sample_rate:
        mono = resample(mono, rate, sample_rate)
    if mono.size < sample_rate / fps:
        raise _error(path, f"too short: {mono.size} samples at {sample_rate} Hz, less than one video frame")
    if not np.isfinite(mono).all():
        raise _error(path, "contains NaN or infinite samples")
    peak = float(np.abs(mono).max())
    if peak < SILENCE_PEAK:
        raise _error(path, f"silent: peak {peak:.2g} below {SILENCE_PEAK:g} full scale")
    return np.ascontiguousarray(mono, dtype=np.float32)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Mono samples (S,) at ``from_rate`` → float32 at ``to_rate``: polyphase filtering, zero phase.

    :func:`scipy.signal.resample_poly` by ``up / down = to_rate / from_rate`` (reduced fraction) with a
    Hann-windowed sinc low-pass of cutoff :data:`RESAMPLE_ROLLOFF` × the lower rate's Nyquist frequency,
    :data:`RESAMPLE_ZERO_CROSSINGS` lobes on each side: the filter of ``torchaudio.functional.resample``'s
    defaults, so audio features match those computed with it (within 1e-3 of the peak, tests/data/README.md).
    Samples outside the signal count as zeros; the output has ``⌈S · up / down⌉`` samples.
    """
    common = math.gcd(from_rate, to_rate)
    up, down = to_rate // common, from_rate // common
    if up == down:
        return np.asarray(samples, dtype=np.float32)
    widest = max(up, down)
    half = math.ceil(RESAMPLE_ZERO_CROSSINGS * widest / RESAMPLE_ROLLOFF)
    low_pass = scipy.signal.firwin(2 * half + 1, RESAMPLE_ROLLOFF / widest, window="hann")
    return scipy.signal.resample_poly(np.asarray(samples, np.float64), up, down, window=low_pass).astype(np.float32)


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    """libsndfile decode → ``(channels (C, S) float32, rate)``; raises ``sf.SoundFileError`` if it can't."""
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    return data.T, int(rate)


def _read_pyav(path: Path) -> tuple[np.ndarray, int]:
    """FFmpeg decode of the first audio stream → ``(channels (C, S) float32, rate)``.

    The decoder returns whole codec frames; MP4/M4A record the encoder's end padding only as the shorter
    duration of the last packet, so the last frame is cut to that duration when it is shorter.
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise _error(path, "no audio stream")
            stream = container.streams.audio[0]
            to_float = av.AudioResampler(format="fltp")
            chunks, padding = [], 0
            for frame in container.decode(stream):
                chunks.extend(part.to_ndarray() for part in to_float.resample(frame))
                padding = _end_padding(frame)
            chunks.extend(part.to_ndarray() for part in to_float.resample(None))
            rate = stream.codec_context.sample_rate
    except av.FFmpegError as error:
        raise _error(path, f"not decodable as audio ({error.strerror or error})") from error
    if not chunks:
        return np.zeros((1, 0), np.float32), int(rate or SAMPLE_RATE)
    channels = np.concatenate(chunks, axis=1)
    return channels[:, : channels.shape[1] - padding], int(rate)


def _end_padding(frame: av.AudioFrame) -> int:
    """Decoded samples of ``frame`` beyond its packet's duration (0 when unknown or not shorter)."""
    if not frame.duration or frame.time_base is None:
        return 0
    kept = round(float(frame.duration * frame.time_base) * frame.sample_rate)
    return max(frame.samples - kept, 0)
