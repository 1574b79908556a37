"""The audio front ends against recorded goldens and against the reference implementations.

tests/data/audio_goldens.npz holds the outputs of the earlier torchaudio 2.11.0 front ends on the signals of
:func:`chirp_noise` (provenance in tests/data/README.md); the SciPy / torch.stft / transformers front ends must
reproduce them, so the inputs of models trained with the old front ends do not change. Measured differences
(max abs): resampling 2.5e-4 with a peak of 0.53 (tolerance 1e-3 × peak, edges included), log-mel 7.9e-6
(tolerance 1e-4), SyncNet MFCC 1.8e-4 with values up to 46 (tolerance 1e-3). The SyncNet MFCCs also match
python_speech_features 0.6, the package SyncNet was trained with: 1.9e-6 (tolerance 1e-4).
"""

import ast
from pathlib import Path

import numpy as np
import pytest
import python_speech_features
import scipy.signal
import soundfile as sf
import torch

from talkinghead.audio.encoders import MelEncoder
from talkinghead.audio.io import load_audio, resample
from talkinghead.models.syncnet import syncnet_mfcc

GOLDENS = Path(__file__).parent / "data" / "audio_goldens.npz"
SOURCE = Path(__file__).resolve().parents[1] / "src" / "talkinghead"


def chirp_noise(seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """The golden signals (float32): logarithmic chirp 100 Hz → 7 kHz at amplitude 0.5 plus white noise at 0.01 rms."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    tone = 0.5 * scipy.signal.chirp(t, f0=100.0, t1=seconds, f1=7000.0, method="logarithmic")
    return (tone + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def goldens():
    with np.load(GOLDENS) as data:
        return dict(data)


def test_resampling_reproduces_the_goldens(goldens, tmp_path):
    stereo = np.stack([chirp_noise(0.25, 44100, seed=1), chirp_noise(0.25, 44100, seed=2)], axis=1)
    sf.write(tmp_path / "stereo.wav", stereo, 44100, subtype="FLOAT")
    speech_rate = resample(chirp_noise(0.25, 22050, seed=3), 22050, 16000)  # espeak-ng's rate
    for name, result in (("resampled_44100", load_audio(tmp_path / "stereo.wav")), ("resampled_22050", speech_rate)):
        expected = goldens[name]
        assert result.dtype == np.float32 and result.shape == expected.shape == (4000,)
        assert np.abs(result - expected).max() <= 1e-3 * np.abs(expected).max()


def test_resampling_keeps_the_passband_and_removes_what_the_new_rate_cannot_hold():
    rate = 48000
    t = np.arange(rate) / rate
    tones = np.sin(2 * np.pi * 1000 * t) + np.sin(2 * np.pi * 11000 * t)  # 11 kHz is above 16 kHz's Nyquist
    result = resample(tones.astype(np.float32), rate, 16000)
    spectrum = np.abs(np.fft.rfft(result[2000:14000] * np.hanning(12000))) / (np.hanning(12000).sum() / 2)
    bins = np.fft.rfftfreq(12000, 1 / 16000)
    assert spectrum[bins == 1000] == pytest.approx(1.0, abs=1e-3)
    assert spectrum[np.abs(bins - 5000) < 50].max() < 4e-3  # 11 kHz would alias to 5 kHz: −54 dB measured
    assert resample(tones[:10].astype(np.float32), rate, rate).tolist() == tones[:10].astype(np.float32).tolist()


def test_log_mel_reproduces_the_golden(goldens):
    encoder = MelEncoder()
    # buffer names and shapes of torchaudio's MelSpectrogram: checkpoints saved with it load strictly
    assert {k: tuple(v.shape) for k, v in encoder.state_dict().items()} == {
        "mel.spectrogram.window": (400,),
        "mel.mel_scale.fb": (201, 80),
    }
    features = encoder(torch.from_numpy(chirp_noise(1.3, 16000, seed=0))[None], 32)[0].numpy()
    assert features.shape == goldens["log_mel"].shape == (32, 320)
    assert np.abs(features - goldens["log_mel"]).max() <= 1e-4


def test_syncnet_mfcc_reproduces_the_golden_and_python_speech_features(goldens):
    audio = chirp_noise(1.3, 16000, seed=0)
    mfcc = syncnet_mfcc(audio).numpy()
    assert mfcc.shape == goldens["syncnet_mfcc"].shape == (13, 129)
    assert np.abs(mfcc - goldens["syncnet_mfcc"]).max() <= 1e-3
    # syncnet_python: 16-bit PCM from FFmpeg, python_speech_features.mfcc with its defaults at 16 kHz
    # (13 coefficients, 25 ms window, 10 ms hop, 512-point FFT, 26 filters, pre-emphasis 0.97, lifter 22)
    pcm = np.clip(np.rint(audio.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    reference = python_speech_features.mfcc(pcm, 16000, winlen=0.025, winstep=0.01, numcep=13).T
    assert np.abs(mfcc - reference).max() <= 1e-4


def test_no_module_imports_torchaudio():
    """No ``import torchaudio`` / ``from torchaudio …`` in any module of the package, at any depth (function-level
    imports included). Read from the source: importing all 103 modules in a fresh interpreter takes 14 s of CPU."""
    imports, files = [], sorted(SOURCE.rglob("*.py"))
    assert len(files) > 100  # the whole package is read
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imports += [(str(path.relative_to(SOURCE)), alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                imports.append((str(path.relative_to(SOURCE)), node.module))
    assert [(name, module) for name, module in imports if module.split(".")[0] == "torchaudio"] == []
