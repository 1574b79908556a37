"""Audio encoder throughput on the CPU: seconds of 16 kHz audio encoded per second of wall time.

Encoders (VividTalk §3.2 uses "a pre-trained audio extractor [1] (wav2vec 2.0)"): the weight-free
``MelEncoder``, a tiny randomly initialised wav2vec 2.0 (the test model's size, 50 Hz conv stack) and, with
``--base``, a randomly initialised model of wav2vec2-base's architecture (the paper's extractor's cost; no
download). Forward only, ``torch.no_grad``, eval mode, float32; a batch of ``--batch`` clips of
``--seconds`` each; best of ``--repeats`` after one warm-up::

    PYTHONPATH=src python benchmarks/bench_audio.py [--seconds 8] [--batch 4] [--base]
"""

import argparse
import time

import torch
from machine import describe_machine
from transformers import Wav2Vec2Config

from talkinghead.audio import FPS, SAMPLE_RATE, AudioEncoder, MelEncoder, Wav2Vec2Encoder, num_video_frames

TINY = Wav2Vec2Config(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
    conv_dim=(16,) * 7,
)


def throughput(encoder: AudioEncoder, waveform: torch.Tensor, repeats: int) -> float:
    """Audio seconds per wall second (best of ``repeats`` after a warm-up)."""
    num_frames = num_video_frames(waveform.shape[1])
    encoder.eval()
    best = float("inf")
    with torch.no_grad():
        encoder(waveform, num_frames)
        for _ in range(repeats):
            start = time.perf_counter()
            encoder(waveform, num_frames)
            best = min(best, time.perf_counter() - start)
    return waveform.numel() / SAMPLE_RATE / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--base", action="store_true", help="also time wav2vec2-base's architecture")
    args = parser.parse_args()
    torch.manual_seed(0)
    waveform = 0.1 * torch.randn(args.batch, round(args.seconds * SAMPLE_RATE))
    encoders = {
        "mel (80 × 4, no weights)": MelEncoder(),
        "wav2vec2 tiny (random, 32-d)": Wav2Vec2Encoder.from_config(TINY),
    }
    if args.base:
        encoders["wav2vec2-base architecture (random, 768-d)"] = Wav2Vec2Encoder.from_config(Wav2Vec2Config())
    print(describe_machine())
    print(f"batch {args.batch} × {args.seconds:g} s at {SAMPLE_RATE} Hz → {FPS} fps, forward only, float32\n")
    print("| encoder | output dim | audio s / s |")
    print("|---|---:|---:|")
    for name, encoder in encoders.items():
        print(f"| {name} | {encoder.output_dim} | {throughput(encoder, waveform, args.repeats):,.0f} |")


if __name__ == "__main__":
    main()
