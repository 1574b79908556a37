"""Helpers the tests share: the tiny corpus arguments, tiny-config model arguments, checkpoints, logged metrics,
smooth head-pose trajectories, and loading a script of ``tools/`` as a module."""

import csv
import importlib.util
import math
from pathlib import Path
from types import ModuleType

import torch

ROOT = Path(__file__).resolve().parents[1]
CSV_LOGGER_CONFIG = ROOT / "lightning_configs" / "loggers" / "csv.yaml"
TINY_CORPUS_ARGS = ("--clips", "6", "--seconds", "2", "--seed", "3", "--workers", "1")
# The tiny corpus's 2-s clips (50 frames) are shorter than the tiny pose configs' 96-frame windows.
SHORT_CLIP_WINDOW = ("--data.window", "48")
# A small stand-in for MeshToVideo's tiny sizes (64² frames, 8–16 channels); tests add their own face parser.
SMALL_MESH_TO_VIDEO = {
    "image_size": 64,
    "render_size": 64,
    "motion_size": 32,
    "rasterizer": "torch",
    "motion": {"facial_channels": [8, 16], "latent_channels": 4, "facial_features": 8, "lip_channels": [8, 16],
               "lip_features": 8, "decoder_channels": 8, "decoder_layers": 1},
    "generator": {"channels": [8, 16], "num_residual": 1},
}  # fmt: skip


def load_tool(name: str) -> ModuleType:
    """``tools/<name>.py`` imported as a module (the scripts are not part of the package)."""
    spec = importlib.util.spec_from_file_location(f"tools_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def logged_metrics(root: Path) -> dict[str, float]:
    """Every ``split/name`` value the CSV loggers under ``root`` wrote (the last one wins)."""
    values: dict[str, float] = {}
    for path in sorted(root.rglob("metrics.csv")):
        for row in csv.DictReader(path.open()):
            values.update({key: float(value) for key, value in row.items() if value and "/" in key})
    return values


def config_init_args(name: str) -> dict:
    """``model.init_args`` of ``lightning_configs/<name>.yaml``."""
    import yaml

    return yaml.safe_load((ROOT / "lightning_configs" / f"{name}.yaml").read_text())["model"]["init_args"]


def tiny_init_args(name: str) -> dict:
    """``model.init_args`` of ``lightning_configs/<name>_tiny.yaml``."""
    return config_init_args(f"{name}_tiny")


def save_checkpoint(module, path: Path) -> Path:
    """Write a LightningModule's checkpoint as a trainer would (no training)."""
    import lightning

    trainer = lightning.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return path


def save_wav2vec2_standin(folder: Path) -> Path:
    """A small random wav2vec 2.0 saved like a pretrained one (``save_pretrained``): ``Wav2Vec2Config()`` defaults —
    LayerDrop, SpecAugment's ``masked_spec_embed``, the 7-layer feature encoder — at a small width and depth. It
    stands in for ``facebook/wav2vec2-base-960h``, which the tests never download."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    config = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7
    )
    Wav2Vec2Model(config).save_pretrained(folder)
    return folder


def speech_like(seconds: float, seed: int = 0, sample_rate: int = 16000):
    """A deterministic speech-like signal (float32, 16 kHz): voiced syllables of 100–300 ms with their own gliding
    pitch (90–220 Hz) and harmonic colouring (a formant-like spectral peak), in phrases of 3–12 syllables
    separated by 0.2–0.8 s pauses, over faint noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = 0.003 * rng.standard_normal(int(seconds * sample_rate)).astype(np.float32)
    position = 0
    while position < len(out):
        for _ in range(int(rng.integers(3, 13))):
            length = int(rng.uniform(0.1, 0.3) * sample_rate)
            t = np.arange(length) / sample_rate
            f0 = rng.uniform(90, 220) * (1 + rng.uniform(-0.2, 0.2) * t / t[-1])
            phase = 2 * np.pi * np.cumsum(f0) / sample_rate
            peak = rng.uniform(300, 2500)  # the harmonic nearest this frequency is the loudest
            harmonics = [np.exp(-((((k * f0.mean()) - peak) / 600) ** 2)) * np.sin(k * phase) for k in range(1, 16)]
            syllable = 0.3 * np.hanning(length) * np.sum(harmonics, axis=0)
            end = min(position + length, len(out))
            out[position:end] += syllable[: end - position]
            position = end
        position += int(rng.uniform(0.2, 0.8) * sample_rate)
    return out


def assert_streams_like_whole(processor, audio, whole, chunk: int) -> None:
    """A causal audio processor fed ``audio`` in ``chunk``-sample pieces (``process`` each, then ``flush``) gives
    exactly ``whole``, the whole-recording samples, and only whole 640-sample frames until the flush."""
    import numpy as np

    parts = [processor.process(audio[i : i + chunk]) for i in range(0, len(audio), chunk)] + [processor.flush()]
    assert all(len(part) % 640 == 0 for part in parts[:-1])
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def smooth_poses(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """Smooth random relative poses (B, T, 6): angles ~0.1 rad, translations ~1 cm, zero at frame 0."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, length)[None, :, None]
    freq = 1 + 3 * torch.rand(batch, 1, 6, generator=generator)
    phase = 2 * math.pi * torch.rand(batch, 1, 6, generator=generator)
    pose = torch.sin(2 * math.pi * freq * t + phase) - torch.sin(phase)
    return pose * torch.tensor([0.1, 0.1, 0.05, 1.0, 1.0, 0.5])
