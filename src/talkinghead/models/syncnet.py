"""SyncNet lip-sync scores LSE-D / LSE-C (VividTalk §4.1 "SyncNet score [6]", Table 1).

SyncNet (Chung & Zisserman, "Out of time: automated lip sync in the wild", ACCV workshops 2016) embeds
5 video frames of the lower face and the 0.2 s of audio MFCCs that go with them into one space, where
in-sync pairs lie close. The scores follow the evaluation that Wav2Lip (Prajwal et al., ACM MM 2020)
made the standard for talking heads:

* 25 fps face crops, 224² (lower face, see :func:`crop_boxes`), BGR, 0…255 as read by OpenCV;
* 16 kHz audio → 13 MFCCs at 100 Hz (:func:`syncnet_mfcc`); video frame ``v`` goes with MFCC columns
  ``[4v, 4v + 20)``;
* one lip and one audio embedding per 5-frame window ``v = 0 … min(T, ⌊S / 640⌋) − 6``;
* for each offset ``o ∈ [−15, 15]`` the mean over windows of ``‖lip_v − audio_{v−o}‖`` (audio embeddings
  zero-padded at the ends); **LSE-D** = the minimum of these 31 means, **LSE-C** = their median minus the
  minimum, and the AV offset is the arg-min ``o`` (positive: the lips of frame ``v`` show the sound of
  frame ``v − o``, i.e. the video lags the audio).

:class:`SyncNet` is the ``S`` network of the public ``syncnet_python`` release (an audio tower of 2-D
convolutions over the 13 × 20 MFCC patch and a lip tower of 3-D convolutions over 5 × 224 × 224 frames,
each followed by 512 → 512 → 1024 fully connected layers), written from the layer shapes so that the
released ``syncnet_v2.model`` state dict loads into it key for key.

MFCCs as ``python_speech_features.mfcc`` computes them (the package SyncNet was trained with) on the 16-bit
PCM that syncnet_python extracts with FFmpeg: samples rounded to int16, pre-emphasis 0.97, 25 ms
rectangular frames every 10 ms (the last one zero-padded), 512-point power spectrum divided by 512,
26 triangular mel filters on FFT bins ``⌊513·f / 16000⌋`` between 0 and 8 kHz (HTK mel scale), natural
log, orthonormal DCT-II, 13 coefficients, sinusoidal lifter 22 and the log frame energy in place of
coefficient 0. The spectrum is NumPy's real FFT and the DCT :func:`scipy.fft.dct`; the filterbank is built
here on the integer FFT bins, as python_speech_features does (filter banks with corners at exact
frequencies, as audio libraries build them, change the low filters). tests/test_audio_parity.py checks the
result against python_speech_features 0.6 itself.
"""

import math
import os
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import scipy.fft
import scipy.signal
import torch
from torch import nn

from talkinghead.conventions import SAMPLE_RATE
from talkinghead.models.weights import load_state_dict_file, load_strict

MFCC_PER_FRAME = 4  # 100 Hz MFCC / 25 fps video
WINDOW = 5  # video frames per SyncNet window (20 MFCC columns)
MAX_OFFSET = 15  # offsets searched: −15 … +15 frames
CROP_SIZE = 224
CROP_SCALE = 0.4  # syncnet_python's crop margin ``cs``
CROP_PAD_VALUE = 110  # grey used where the crop leaves the frame, as syncnet_python pads
BOX_SMOOTHING = 13  # median-filter length (frames) for the face box track
EMBEDDING = 1024


class SyncNetwork(Protocol):
    """What the scoring needs: lip windows (B, 3, 5, H, W) and MFCC patches (B, 1, 13, 20) → (B, D)."""

    def forward_lip(self, frames: torch.Tensor) -> torch.Tensor: ...

    def forward_aud(self, mfcc: torch.Tensor) -> torch.Tensor: ...


def _tower(spec: tuple, conv: type, norm: type, pool: type, in_channels: int) -> nn.Sequential:
    """Conv → BatchNorm → ReLU (→ MaxPool) blocks from (out, kernel, stride, padding, pool args or None)."""
    layers: list[nn.Module] = []
    for out, kernel, stride, padding, pooling in spec:
        layers += [conv(in_channels, out, kernel, stride=stride, padding=padding), norm(out), nn.ReLU(inplace=True)]
        if pooling is not None:
            layers.append(pool(*pooling))
        in_channels = out
    return nn.Sequential(*layers)


def _head(embedding: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Linear(512, embedding))


# (out channels, kernel, stride, padding, max-pool (kernel, stride[, padding]) or None)
_AUDIO_TOWER = (
    (64, 3, 1, 1, (1, 1)),  # 13 × 20
    (192, 3, 1, 1, ((3, 3), (1, 2))),  # → 11 × 9
    (384, 3, 1, 1, None),
    (256, 3, 1, 1, None),
    (256, 3, 1, 1, ((3, 3), (2, 2))),  # → 5 × 4
    (512, (5, 4), 1, 0, None),  # → 1 × 1
)
_LIP_TOWER = (
    (96, (5, 7, 7), (1, 2, 2), 0, ((1, 3, 3), (1, 2, 2))),  # 5 × 224² → 1 × 109² → 54²
    (256, (1, 5, 5), (1, 2, 2), (0, 1, 1), ((1, 3, 3), (1, 2, 2), (0, 1, 1))),  # → 26² → 13²
    (256, (1, 3, 3), 1, (0, 1, 1), None),
    (256, (1, 3, 3), 1, (0, 1, 1), None),
    (256, (1, 3, 3), 1, (0, 1, 1), ((1, 3, 3), (1, 2, 2))),  # → 6²
    (512, (1, 6, 6), 1, 0, None),  # → 1²
)


class SyncNet(nn.Module):
    """SyncNet ``S``: ``forward_aud`` (B, 1, 13, 20) → (B, 1024), ``forward_lip`` (B, 3, 5, 224, 224) → (B, 1024).

    Submodule names (``netcnnaud``, ``netfcaud``, ``netcnnlip``, ``netfclip``) and layer order are those of
    the released weights, so ``syncnet_v2.model`` loads with ``load_state_dict(strict=True)``.
    """

    def __init__(self, embedding: int = EMBEDDING):
        super().__init__()
        self.netcnnaud = _tower(_AUDIO_TOWER, nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, 1)
        self.netfcaud = _head(embedding)
        self.netcnnlip = _tower(_LIP_TOWER, nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d, 3)
        self.netfclip = _head(embedding)

    def forward_aud(self, mfcc: torch.Tensor) -> torch.Tensor:
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def forward_lip(self, frames: torch.Tensor) -> torch.Tensor:
        return self.netfclip(self.netcnnlip(frames).flatten(1))


def load_syncnet(path: str | os.PathLike) -> SyncNet:
    """The SyncNet of a ``syncnet_v2.model`` state dict, in eval mode; :class:`WeightsError` when unusable."""
    state = load_state_dict_file("SyncNet", path)
    network = SyncNet(embedding=state["netfcaud.3.weight"].shape[0] if "netfcaud.3.weight" in state else EMBEDDING)
    load_strict(network, state, "SyncNet", path)
    return network.eval().requires_grad_(False)


def _mel_filterbank(n_fft: int = 512, n_filters: int = 26, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(n_fft // 2 + 1, n_filters) triangles with corners on FFT bins ``⌊(n_fft + 1)·f / sr⌋`` (HTK mel)."""
    top = 2595.0 * math.log10(1.0 + (sample_rate / 2) / 700.0)
    hertz = 700.0 * (10.0 ** (np.linspace(0.0, top, n_filters + 2) / 2595.0) - 1.0)
    bins = np.floor((n_fft + 1) * hertz / sample_rate).astype(int)
    bank = np.zeros((n_filters, n_fft // 2 + 1))
    for j, (low, mid, high) in enumerate(zip(bins[:-2], bins[1:-1], bins[2:], strict=True)):
        bank[j, low:mid] = (np.arange(low, mid) - low) / (mid - low)
        bank[j, mid:high] = (high - np.arange(mid, high)) / (high - mid)
    return bank.T


def syncnet_mfcc(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """16 kHz mono float samples in [−1, 1] → (13, F) float32 MFCCs at 100 Hz (module docstring).

    ``F = 1 + ⌈(S − 400) / 160⌉`` frames for ``S > 400`` samples (one otherwise).
    """
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"SyncNet MFCCs need {SAMPLE_RATE} Hz audio, got {sample_rate} Hz")
    frame, hop, n_fft = 400, 160, 512
    pcm = np.clip(np.rint(np.asarray(audio, dtype=np.float64) * 32768.0), -32768, 32767)  # as pcm_s16le
    signal = np.append(pcm[:1], pcm[1:] - 0.97 * pcm[:-1])  # pre-emphasis
    frames = 1 if signal.size <= frame else 1 + math.ceil((signal.size - frame) / hop)
    signal = np.pad(signal, (0, (frames - 1) * hop + frame - signal.size))
    framed = np.lib.stride_tricks.sliding_window_view(signal, frame)[::hop]  # (F, 400): samples [160k, 160k + 400)
    power = np.abs(np.fft.rfft(framed, n_fft)) ** 2 / n_fft  # (F, 257), each frame zero-padded to 512
    tiny = np.finfo(np.float64).eps
    energy = power.sum(1)
    energy = np.where(energy == 0, tiny, energy)
    mel = power @ _mel_filterbank(n_fft)  # (F, 26)
    log_mel = np.log(np.where(mel == 0, tiny, mel))
    cepstra = scipy.fft.dct(log_mel, type=2, norm="ortho", axis=1)[:, :13]
    cepstra *= 1.0 + 11.0 * np.sin(np.pi * np.arange(13) / 22.0)  # sinusoidal lifter 22
    cepstra[:, 0] = np.log(energy)
    return torch.from_numpy(cepstra.T.astype(np.float32))


def crop_boxes(landmarks: np.ndarray) -> np.ndarray:
    """Per-frame face boxes (T, 3) = (centre x, centre y, half size) from landmarks (T, N, ≥2), smoothed.

    syncnet_python crops around S3FD face detections; here the detection is the FaceMesh landmarks'
    bounding box (``half size`` = half its longer side). As there, centre and size are median-filtered over
    :data:`BOX_SMOOTHING` frames.
    """
    low, high = landmarks[..., :2].min(axis=1), landmarks[..., :2].max(axis=1)
    boxes = np.concatenate(((low + high) / 2.0, (high - low).max(axis=1, keepdims=True) / 2.0), axis=1)
    kernel = min(BOX_SMOOTHING, len(boxes) - (1 - len(boxes) % 2))
    if kernel >= 3:
        boxes = np.stack([scipy.signal.medfilt(track, kernel) for track in boxes.T], axis=1)
    return boxes


def crop_face(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """syncnet_python's crop of one RGB frame → (224, 224, 3) uint8 RGB.

    Square of side ``2·s·(1 + 0.4)`` around a box of half size ``s``, horizontally centred on the face and
    reaching from ``s`` above its centre to ``s·(1 + 2·0.4)`` below (mouth and chin), grey outside the frame.
    """
    centre_x, centre_y, half = (float(v) for v in box)
    side = 2.0 * half * (1.0 + CROP_SCALE)
    x0, y0 = centre_x - side / 2.0, centre_y - half
    scale = CROP_SIZE / side
    matrix = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]])
    return cv2.warpAffine(
        np.ascontiguousarray(frame),
        matrix,
        (CROP_SIZE, CROP_SIZE),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(CROP_PAD_VALUE,) * 3,
    )


@dataclass(frozen=True)
class SyncScores:
    """LSE-D (lower is better), LSE-C (higher is better), AV offset in frames and the per-offset means."""

    lse_d: float
    lse_c: float
    offset: int
    mean_distances: torch.Tensor  # (2·max_offset + 1,), offsets −max_offset … +max_offset reversed (index 0 = +max)


def offset_distances(lip: torch.Tensor, audio: torch.Tensor, max_offset: int = MAX_OFFSET) -> torch.Tensor:
    """(N, D) × (N, D) → (2·max_offset + 1,): entry ``j`` = mean over ``v`` of ``‖lip_v − audio_{v+j−max_offset}‖``.

    Audio embeddings outside ``[0, N)`` are zero vectors (syncnet_python's padding).
    """
    padded = nn.functional.pad(audio, (0, 0, max_offset, max_offset))
    windows = padded.unfold(0, 2 * max_offset + 1, 1).transpose(1, 2)  # (N, 2v+1, D)
    return nn.functional.pairwise_distance(lip[:, None, :], windows).mean(0)


def scores_from_distances(mean_distances: torch.Tensor, max_offset: int = MAX_OFFSET) -> SyncScores:
    """LSE-D = min, LSE-C = median − min, offset = ``max_offset − argmin`` (syncnet_python's convention)."""
    minimum, index = mean_distances.min(0)
    return SyncScores(
        lse_d=float(minimum),
        lse_c=float(mean_distances.median() - minimum),
        offset=max_offset - int(index),
        mean_distances=mean_distances,
    )


@torch.no_grad()
def sync_scores(
    network: SyncNetwork,
    crops: np.ndarray,
    mfcc: torch.Tensor,
    max_offset: int = MAX_OFFSET,
    batch_size: int = 20,
    device: str | torch.device = "cpu",
) -> SyncScores:
    """Scores of face crops (T, H, W, 3) uint8 RGB at 25 fps against MFCCs (13, F) at 100 Hz.

    The network sees BGR 0…255 float frames, as syncnet_python feeds OpenCV images. Needs at least
    :data:`WINDOW` + 1 frames of both video and audio (``ValueError`` otherwise).
    """
    length = min(len(crops), mfcc.shape[1] // MFCC_PER_FRAME)
    windows = length - WINDOW
    if windows < 1:
        raise ValueError(f"too short for SyncNet: {length} frames with audio, needs at least {WINDOW + 1}")
    video = torch.from_numpy(np.ascontiguousarray(crops[:length, ..., ::-1])).permute(3, 0, 1, 2)  # uint8 BGR
    patches = mfcc[None]  # (1, 13, F)
    lip, audio = [], []
    for start in range(0, windows, batch_size):
        stop = min(windows, start + batch_size)
        frames = torch.stack([video[:, v : v + WINDOW] for v in range(start, stop)]).float()  # (B, 3, 5, H, W)
        sound = torch.stack(
            [
                patches[..., v * MFCC_PER_FRAME : v * MFCC_PER_FRAME + WINDOW * MFCC_PER_FRAME]
                for v in range(start, stop)
            ]
        )  # (B, 1, 13, 20)
        lip.append(network.forward_lip(frames.to(device)).float().cpu())
        audio.append(network.forward_aud(sound.to(device)).float().cpu())
    return scores_from_distances(offset_distances(torch.cat(lip), torch.cat(audio), max_offset), max_offset)
