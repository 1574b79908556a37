"""Resumable, byte-deterministic output of the preprocessing run: per-video work files, shards, rejections.

Layout under ``--out``::

    shard-NNNNNN.tar / .json   shard n = the clips of videos ``n·k … n·k + k − 1`` of the plan (k =
                               ``--videos-per-shard``), in plan order, clips in time order; the manifest
                               is :mod:`talkinghead.data.shards`'s (``inputs`` are the video keys) plus
                               ``rejected`` rows, so ``write_index`` and every shard reader use it as is
    .work/<stem>.tar / .json   a finished video's clips and rejections, until its shard is assembled
    rejected.csv               video, start_frame, end_frame, reason (frame range empty = whole video)
    index.json                 :func:`talkinghead.data.shards.write_index` (identity split)

Every file is written under a temporary name and renamed when complete, so a killed run leaves no
partial file under a final name. A video's work files exist only once it is finished; a shard is
assembled once all its videos are, by copying their members in plan order into a tar with fixed member
times and owners (as :class:`~talkinghead.data.shards.ShardWriter` writes), so a resumed run's shards are
byte-identical to an uninterrupted run's.
"""

import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

from talkinghead.atomic import write_bytes_atomic
from talkinghead.data.clip import Clip
from talkinghead.data.preprocess.discover import VideoInput
from talkinghead.data.preprocess.tracking import Rejection
from talkinghead.data.shards import (
    ShardReader,
    clip_summary,
    deterministic_tar,
    file_sha256,
    write_json_atomic,
    write_shard,
)

WORK_DIR = ".work"
REJECTED_CSV = "rejected.csv"
SHARD_PREFIX = "shard"
CSV_COLUMNS = ("video", "start_frame", "end_frame", "reason")


def shard_name(index: int) -> str:
    return f"{SHARD_PREFIX}-{index:06d}"


def _fsync_close(handle) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


def rejection_row(video: VideoInput, rejection: Rejection) -> dict:
    return {"video": video.key, "start_frame": rejection.start, "end_frame": rejection.end, "reason": rejection.reason}


class VideoWork:
    """Collects one video's clips in ``.work/<stem>.tar`` (a context manager; see :meth:`finish`)."""

    def __init__(self, out_dir: Path, video: VideoInput):
        self.video = video
        self.folder = out_dir / WORK_DIR
        self.folder.mkdir(parents=True, exist_ok=True)
        self.tar_path = self.folder / f"{video.stem}.tar"
        self.summaries: list[dict] = []

    def __enter__(self) -> "VideoWork":
        self._temp = self.tar_path.with_name(self.tar_path.name + ".tmp")
        self._handle = open(self._temp, "wb")  # noqa: SIM115 - closed in finish / __exit__
        self._tar = deterministic_tar(self._handle)
        return self

    def add(self, clip: Clip) -> None:
        self._tar.write(clip.to_sample())
        self.summaries.append(clip_summary(clip))

    def finish(self, rejections: list[Rejection]) -> None:
        """Close the tar and mark the video done by writing ``.work/<stem>.json`` (clips and rejections)."""
        self._tar.close()
        _fsync_close(self._handle)
        os.replace(self._temp, self.tar_path)
        write_json_atomic(
            self.folder / f"{self.video.stem}.json",
            {
                "video": self.video.key,
                "clips": self.summaries,
                "rejected": [rejection_row(self.video, r) for r in rejections],
            },
        )

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is not None:
            self._tar.close()
            self._handle.close()
            self._temp.unlink(missing_ok=True)


def video_done(out_dir: Path, video: VideoInput) -> bool:
    folder = out_dir / WORK_DIR
    return (folder / f"{video.stem}.json").is_file() and (folder / f"{video.stem}.tar").is_file()


def read_manifest(out_dir: Path, index: int) -> dict | None:
    try:
        return json.loads((out_dir / f"{shard_name(index)}.json").read_text())
    except (OSError, ValueError):
        return None


def shard_finished(out_dir: Path, index: int, videos: list[VideoInput]) -> bool:
    """Whether shard ``index`` exists for exactly these videos with the size and sha256 its manifest records."""
    manifest = read_manifest(out_dir, index)
    tar_path = out_dir / f"{shard_name(index)}.tar"
    return (
        manifest is not None
        and manifest.get("inputs") == [video.key for video in videos]
        and tar_path.is_file()
        and tar_path.stat().st_size == manifest.get("num_bytes")
        and file_sha256(tar_path) == manifest.get("sha256")
    )


def assemble_shard(out_dir: Path, index: int, videos: list[VideoInput]) -> dict:
    """Copy the finished videos' clips into shard ``index``, write its manifest, drop the work files."""
    folder = out_dir / WORK_DIR
    summaries, rejected = [], []
    for video in videos:
        record = json.loads((folder / f"{video.stem}.json").read_text())
        summaries.extend(record["clips"])
        rejected.extend(record["rejected"])

    def samples() -> Iterator[dict]:
        for video in videos:
            with ShardReader(folder / f"{video.stem}.tar") as reader:
                for clip_id in reader.clip_ids:
                    yield {"__key__": clip_id} | {key: reader.read(clip_id, key) for key in reader.keys(clip_id)}

    manifest = write_shard(
        out_dir, shard_name(index), samples(), summaries, [video.key for video in videos], rejected=rejected
    )
    for video in videos:
        (folder / f"{video.stem}.tar").unlink(missing_ok=True)
        (folder / f"{video.stem}.json").unlink(missing_ok=True)
    return manifest


def write_rejected_csv(out_dir: Path, num_shards: int) -> int:
    """``rejected.csv`` from the finished shards' manifests (in shard order); returns the number of rows."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    rows = 0
    for index in range(num_shards):
        manifest = read_manifest(out_dir, index)
        for row in (manifest or {}).get("rejected", []):
            writer.writerow(row)
            rows += 1
    write_bytes_atomic(out_dir / REJECTED_CSV, buffer.getvalue().encode("utf-8"))
    return rows
