"""Data-loading throughput from shards: stage-1 windows/s (0 and 2 workers) and stage-2 frame pairs/s.

Builds a temporary shard set of synthetic clips of realistic size (3 s at 25 fps, 16 kHz audio, 256²
frames of a moving natural image, 468 landmarks) and reads it through ``TalkingHeadDataModule``
exactly as training does (decode, window/pair selection, collation). It also compares frame codecs on
the same frames (size per frame, decode speed) to document why frames are stored as JPEG::

    PYTHONPATH=src python benchmarks/bench_dataloading.py [--clips 128] [--seconds 3]

Goal: ≥ 1000 stage-1 windows/s.
"""

import argparse
import dataclasses
import io
import tempfile
import time

import av
import numpy as np
import torch
from machine import describe_machine
from skimage import data as skimage_data
from skimage.transform import resize

from talkinghead.conventions import CROP_SIZE, FPS, FRAME_SAMPLES, POSE_DIM, SAMPLE_RATE
from talkinghead.data.clip import Clip, decode_frame, encode_frame
from talkinghead.data.datamodule import TalkingHeadDataModule
from talkinghead.data.shards import ShardWriter, write_index
from talkinghead.face.camera import PerspectiveCamera
from talkinghead.face.canonical_mesh import NUM_VERTICES


def moving_frames(num_frames: int, seed: int) -> np.ndarray:
    """A 256² crop of the astronaut photo drifting like a talking head (uint8 (T, 256, 256, 3))."""
    image = (resize(skimage_data.astronaut(), (300, 300)) * 255).astype(np.uint8)
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, 2)
    frames = []
    for t in range(num_frames):
        dy, dx = int(8 + 6 * np.sin(t / 7 + phase[0])), int(8 + 6 * np.cos(t / 5 + phase[1]))
        frames.append(image[dy : dy + CROP_SIZE, dx : dx + CROP_SIZE])
    return np.stack(frames)


def synthetic_clip(index: int, num_frames: int) -> Clip:
    rng = np.random.default_rng(index)
    return Clip(
        meta={
            "clip_id": f"clip{index:05d}",
            "identity_id": f"person{index // 4}",
            "source": "benchmark",
            "fps": FPS,
            "num_frames": num_frames,
            "sample_rate": SAMPLE_RATE,
            "crop_box": [0, 0, CROP_SIZE, CROP_SIZE],
            "fit_residual": 0.3,
            "camera": dataclasses.asdict(PerspectiveCamera()),
        },
        audio=0.1 * rng.standard_normal(num_frames * FRAME_SAMPLES),
        alpha=rng.standard_normal(80),
        beta=rng.random((num_frames, 52)),
        pose=0.1 * rng.standard_normal((num_frames, POSE_DIM)),
        lip_offsets=0.01 * rng.standard_normal((num_frames, 40, 3)),
        landmarks=CROP_SIZE * rng.random((num_frames, NUM_VERTICES, 2)),
        frames=moving_frames(num_frames, index),
    )


def build_shards(root: str, clips: int, num_frames: int) -> float:
    """Write ``clips`` synthetic clips (16 per shard) and the index; return the mean bytes per clip."""
    ids = [f"clip{i:05d}" for i in range(clips)]
    with ShardWriter(root, ids, clips_per_shard=16) as writer:
        for i, clip_id in enumerate(ids):
            writer.put(clip_id, synthetic_clip(i, num_frames))
    index = write_index(root)
    return sum(shard["num_bytes"] for shard in index["shards"]) / clips


def throughput(data: TalkingHeadDataModule, min_seconds: float) -> float:
    """Steady-state items per second over training epochs for ≥ ``min_seconds``.

    Each epoch's first batch (worker start-up, shard opening) is excluded from the count and the time.
    """
    items, elapsed = 0, 0.0
    while elapsed < min_seconds:
        loader = iter(data.train_dataloader())
        next(loader)
        start = time.perf_counter()
        items += sum(len(batch["clip_id"]) for batch in loader)
        elapsed += time.perf_counter() - start
    return items / elapsed


def encode_video(frames: np.ndarray, codec: str, pix_fmt: str, options: dict) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width = stream.height = CROP_SIZE
        stream.pix_fmt, stream.options = pix_fmt, options
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def decode_video(payload: bytes) -> np.ndarray:
    with av.open(io.BytesIO(payload)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def codec_table(num_frames: int) -> list[str]:
    """Markdown rows: per-frame size, error and the cost of getting 2 random frames of a 3-s clip."""
    frames = moving_frames(num_frames, 0)
    rows = []
    videos = [
        ("H.264 lossless RGB (libx264rgb qp 0)", "libx264rgb", "rgb24", {"qp": "0", "preset": "ultrafast"}),
        ("H.264 yuv444p crf 0 (libx264)", "libx264", "yuv444p", {"crf": "0", "preset": "ultrafast"}),
    ]
    for name, codec, pix_fmt, options in videos:
        payload = encode_video(frames, codec, pix_fmt, options)
        start = time.perf_counter()
        decoded = decode_video(payload)
        seconds = time.perf_counter() - start
        rows.append((name, len(payload) / num_frames, np.abs(decoded.astype(int) - frames), seconds))
    jpegs = [encode_frame(frame) for frame in frames]
    start = time.perf_counter()
    decoded = np.stack([decode_frame(jpeg) for jpeg in jpegs])
    per_frame = (time.perf_counter() - start) / num_frames
    rows.append(
        (
            "JPEG q95 4:4:4 sequence (chosen)",
            sum(map(len, jpegs)) / num_frames,
            np.abs(decoded.astype(int) - frames),
            2 * per_frame,
        )
    )
    lines = ["| frames codec | kB/frame | max abs err | PSNR dB | ms for 2 random frames |", "|---|---|---|---|---|"]
    for name, size, error, seconds in rows:
        psnr = "lossless" if error.max() == 0 else f"{10 * np.log10(255**2 / np.mean(error.astype(float) ** 2)):.1f}"
        lines.append(f"| {name} | {size / 1e3:.1f} | {error.max()} | {psnr} | {seconds * 1e3:.2f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum timing per row")
    parser.add_argument("--window", type=int, default=50, help="stage-1 window in frames")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    num_frames = 3 * FPS
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        bytes_per_clip = build_shards(root, args.clips, num_frames)
        build_seconds = time.perf_counter() - start
        rows = []
        for workers in (0, 2):
            data = TalkingHeadDataModule(root, window=args.window, batch_size=args.batch_size, num_workers=workers)
            rows.append(
                (f"stage-1 windows/s ({args.window} frames, all fields)", workers, throughput(data, args.seconds))
            )
        for workers in (0, 2):
            data = TalkingHeadDataModule(
                root, mode="stage2", pairs_per_clip=8, batch_size=args.batch_size, num_workers=workers
            )
            rows.append((f"stage-2 frame pairs/s ({CROP_SIZE}², all fields)", workers, throughput(data, args.seconds)))
    print(describe_machine())
    print(
        f"Corpus: {args.clips} clips × 3 s, {bytes_per_clip / 1e6:.2f} MB per clip in shards, "
        f"written in {build_seconds:.1f} s; batch size {args.batch_size}\n"
    )
    print("| measurement | workers | items/s |\n|---|---|---|")
    for name, workers, rate in rows:
        print(f"| {name} | {workers} | {rate:.0f} |")
    print()
    print("\n".join(codec_table(num_frames)))


if __name__ == "__main__":
    main()
