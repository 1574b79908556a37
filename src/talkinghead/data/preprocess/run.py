"""The preprocessing driver: plan, job-array split, parallel workers, shard assembly, index and rejections.

The plan is the ordered video list cut into shards of ``videos_per_shard`` videos. ``num_shards`` /
``shard_index`` (cluster job arrays) give job ``i`` the shards ``n`` with ``n mod num_shards = i``: jobs
never overlap, and because shard ``n`` is always the same videos, an array of jobs writes exactly the
shards one job would. Every job rewrites ``rejected.csv`` and ``index.json`` from all shards finished so
far; after an array, one more run of the same command with ``--resume`` and without the split verifies
everything (nothing is redone) and writes the complete index.

Resume: finished shards (manifest, size and sha256 agree) and finished videos (work files present) are
skipped; everything else is redone from its start.
"""

import multiprocessing
import warnings
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from talkinghead.data.preprocess.clip_builder import PreprocessSettings, VideoReport, process_video
from talkinghead.data.preprocess.discover import VideoInput, discover_videos
from talkinghead.data.preprocess.writer import (
    SHARD_PREFIX,
    WORK_DIR,
    assemble_shard,
    shard_finished,
    video_done,
    write_rejected_csv,
)
from talkinghead.data.shards import write_index

__all__ = ["PreprocessResult", "PreprocessSettings", "preprocess_videos"]


@dataclass
class PreprocessResult:
    videos: int  # videos in the whole plan
    processed: int  # videos this run decoded
    frames: int  # frames this run tracked
    shards_written: int
    clips: int  # clips in index.json (0 when no shard holds a clip yet)
    rejected_rows: int
    index_written: bool


def _job(task: tuple[VideoInput, PreprocessSettings, Path]) -> VideoReport:
    return process_video(*task)


def _existing_output(out_dir: Path) -> bool:
    return out_dir.is_dir() and (any(out_dir.glob(f"{SHARD_PREFIX}-*")) or (out_dir / WORK_DIR).is_dir())


def preprocess_videos(
    videos: str | Path,
    out_dir: str | Path,
    settings: PreprocessSettings | None = None,
    workers: int = 1,
    num_shards: int = 1,
    shard_index: int = 0,
    resume: bool = False,
    progress: bool = True,
) -> PreprocessResult:
    """Turn a folder or list of videos into shards + ``index.json`` + ``rejected.csv`` under ``out_dir``.

    Raises ``ValueError`` for bad arguments or when ``out_dir`` already holds output and ``resume`` is off.
    """
    settings = settings or PreprocessSettings()
    out_dir = Path(out_dir)
    if workers < 1 or settings.videos_per_shard < 1:
        raise ValueError("--workers and --videos-per-shard must be ≥ 1")
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"--shard-index must be in [0, --num-shards), got {shard_index} of {num_shards}")
    if _existing_output(out_dir) and not resume:
        raise ValueError(f"{out_dir} already holds preprocessing output; pass --resume to continue it")
    plan = discover_videos(videos)
    if not plan:
        raise ValueError(f"no videos found in {videos}")
    out_dir.mkdir(parents=True, exist_ok=True)
    size = settings.videos_per_shard
    groups = [plan[i : i + size] for i in range(0, len(plan), size)]
    mine = [n for n in range(shard_index, len(groups), num_shards) if not shard_finished(out_dir, n, groups[n])]
    tasks = [(video, settings, out_dir) for n in mine for video in groups[n] if not video_done(out_dir, video)]
    shard_of = {video.key: n for n in mine for video in groups[n]}
    written = 0

    def assemble_ready(shards: list[int]) -> None:
        nonlocal written
        for n in shards:
            if all(video_done(out_dir, video) for video in groups[n]):
                assemble_shard(out_dir, n, groups[n])
                written += 1

    assemble_ready(mine)
    reports: list[VideoReport] = []
    bar = tqdm(total=len(tasks), unit="video", disable=not progress, desc="preprocess")
    if workers > 1 and len(tasks) > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for report in pool.imap_unordered(_job, tasks):
                reports.append(report)
                bar.update()
                assemble_ready([shard_of[report.key]])
    else:
        for task in tasks:
            reports.append(_job(task))
            bar.update()
            assemble_ready([shard_of[task[0].key]])
    bar.close()
    rows = write_rejected_csv(out_dir, len(groups))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # small corpora leave val/test empty; index.json says so
            index = write_index(out_dir, seed=settings.seed, prefix=SHARD_PREFIX)
        clips, index_written = len(index["clips"]), True
    except (FileNotFoundError, ValueError):
        clips, index_written = 0, False
    work = out_dir / WORK_DIR
    if work.is_dir() and not any(work.iterdir()):
        work.rmdir()
    return PreprocessResult(
        len(plan), len(reports), sum(r.frames for r in reports), written, clips, rows, index_written
    )
