"""Preprocessing throughput (goal: ≥ 50 video frames/s per core for landmarks + fit).

Input: ``--videos`` synthetic 640×480 talking-portrait videos of ``--seconds`` each (scikit-image's
astronaut portrait moved by a smooth roll/translation trajectory, a 220-Hz tone as audio), written once.

1. Stages, one process, one torch thread: PyAV decode on the 25-fps grid, MediaPipe FaceMesh (478
   landmarks, video mode, 2 faces max), and the closed-form fit (``fit_sequence``) per frame.
2. End to end, ``preprocess_videos`` with 1 … ``--max-workers`` worker processes (decode twice, track,
   crop, fit, JPEG/FLAC encode, shard write): frames/s in total and per worker::

    PYTHONPATH=src python benchmarks/bench_preprocess.py [--videos 4] [--seconds 8] [--max-workers 2]
"""

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from machine import describe_machine

from talkinghead.conventions import FPS, SAMPLE_RATE
from talkinghead.data.preprocess import PreprocessSettings, preprocess_videos
from talkinghead.data.preprocess.tracking import FaceTracker, TrackingConfig
from talkinghead.face import PerspectiveCamera, builtin_identity_std, builtin_morphable_model
from talkinghead.face.clip_crop import clip_crop_box, to_crop
from talkinghead.face.crop import crop_box, crop_image
from talkinghead.face.detection import detect_face_landmarks
from talkinghead.face.fitting import fit_sequence, mediapipe_landmarks_for
from talkinghead.face.images import load_image_rgb
from talkinghead.media import VideoWriter, iter_video_frames


def make_video(path: Path, seconds: float, seed: int) -> None:
    image = load_image_rgb()
    portrait = crop_image(image, crop_box(detect_face_landmarks(image), image.shape[:2], 2.4), 400)
    canvas = np.zeros((480, 640, 3), np.uint8)
    rng = np.random.default_rng(seed)
    frames = int(seconds * FPS)
    t = np.arange(frames) / FPS
    roll = 8 * np.sin(2 * np.pi * t / rng.uniform(2, 4))
    shift = 20 * np.sin(2 * np.pi * t[:, None] / rng.uniform(3, 5, 2))
    audio = (0.2 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE)).astype(np.float32)
    with VideoWriter(path, fps=FPS, audio=audio) as out:
        for k in range(frames):
            matrix = cv2.getRotationMatrix2D((200, 200), roll[k], 1.0)
            matrix[:, 2] += (120 + shift[k, 0], 40 + shift[k, 1])
            out.write(
                cv2.warpAffine(portrait, matrix, (640, 480), dst=canvas.copy(), borderMode=cv2.BORDER_TRANSPARENT)
            )


def stage_rates(path: Path) -> dict[str, float]:
    """Frames/s of decode, FaceMesh and fit on one video in this process (one torch thread)."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    frames = list(iter_video_frames(path, FPS))
    decode = len(frames) / (time.perf_counter() - start)
    tracker = FaceTracker(TrackingConfig())
    start = time.perf_counter()
    landmarks = np.stack([tracker.observe(frame).landmarks for frame in frames])
    track = len(frames) / (time.perf_counter() - start)
    model, camera = builtin_morphable_model(), PerspectiveCamera()
    points = mediapipe_landmarks_for(model, torch.from_numpy(to_crop(landmarks, clip_crop_box(landmarks))))
    fit_sequence(model, points[:10, :, :2], camera, alpha_std=builtin_identity_std())  # warm-up
    start = time.perf_counter()
    fit_sequence(model, points[..., :2], camera, depth=points[..., 2], alpha_std=builtin_identity_std())
    fit = len(frames) / (time.perf_counter() - start)
    return {"decode": decode, "landmarks": track, "fit": fit, "landmarks + fit": 1 / (1 / track + 1 / fit)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--max-workers", type=int, default=2)
    args = parser.parse_args()
    print(describe_machine())
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "videos").mkdir()
        for k in range(args.videos):
            make_video(root / "videos" / f"clip_{k:03d}.mp4", args.seconds, k)
        print(f"\n{args.videos} videos of {args.seconds:g} s, 640×480, {FPS} fps\n")
        print("| stage (1 process, 1 torch thread) | frames/s |\n|---|---|")
        for name, rate in stage_rates(root / "videos" / "clip_000.mp4").items():
            print(f"| {name} | {rate:.0f} |")
        print("\n| workers | end-to-end frames/s | per worker |\n|---|---|---|")
        for workers in range(1, args.max_workers + 1):
            out = root / f"out{workers}"
            start = time.perf_counter()
            result = preprocess_videos(
                root / "videos", out, PreprocessSettings(videos_per_shard=1), workers=workers, progress=False
            )
            rate = result.frames / (time.perf_counter() - start)
            print(f"| {workers} | {rate:.0f} | {rate / workers:.0f} |")
            shutil.rmtree(out)


if __name__ == "__main__":
    main()
