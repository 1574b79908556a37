"""``TalkingHeadDataModule``: windows (stage 1) and frame pairs (stage 2) from clip shards.

Work is planned from ``index.json`` alone, so every DDP rank and dataloader worker computes the same
plan and takes a disjoint part of it:

* an *item* is one window (stage 1) or one frame pair (stage 2) of one clip of the split;
* partitions are the ``world_size · num_workers`` (rank, worker) pairs. For training, when the split's
  shards are at least as many as the partitions, whole shards go to partitions (shard order reshuffled
  every epoch); otherwise — and always for val/test — items are dealt out round-robin by item index.
  Either way no item is seen twice in an epoch. Readers seek straight to the members they need, so the
  item-level split costs header reads only;
* with more than one rank every partition is cut to the smallest partition's length so all ranks run
  the same number of batches (DDP would hang otherwise); this drops at most one shard's worth of items
  per partition and epoch, different ones each epoch for training. A single process drops nothing.

Clips shorter than the window (stage 1), or with fewer than two frames or no frames (stage 2), are
skipped and counted in a log line, never padded.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import lightning
import numpy as np
import torch
import torch.distributed
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from talkinghead.data.clip import (
    AUDIO_KEY,
    MOTION_FIELDS,
    MOTION_KEY,
    decode_audio,
    decode_frame,
    decode_motion,
    frame_key,
)
from talkinghead.data.shards import SPLITS, ShardReader, load_index, verify_shards

log = logging.getLogger(__name__)

STAGE1_FIELDS = ("audio", *MOTION_FIELDS)
STAGE2_FIELDS = MOTION_FIELDS
_MAX_OPEN_SHARDS = 8


def _distributed_rank_and_size() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _shuffle_in_shard_blocks(items: list[tuple], rng: np.random.Generator) -> list[tuple]:
    """Shuffle items (in shard order) within consecutive blocks spanning ≤ ``_MAX_OPEN_SHARDS`` shards.

    Batches mix clips of several shards while a worker keeps at most that many shards open.
    """
    blocks: list[list[tuple]] = []
    shards: set[str] = set()
    for item in items:
        if item[0] not in shards and len(shards) == _MAX_OPEN_SHARDS or not blocks:
            blocks.append([])
            shards = set()
        shards.add(item[0])
        blocks[-1].append(item)
    return [block[i] for block in blocks for i in rng.permutation(len(block))]


class ShardWindowDataset(IterableDataset):
    """Iterable dataset of stage-1 windows or stage-2 frame pairs of one split (see module docstring).

    ``rank``/``world_size`` default to ``torch.distributed``'s (0/1 when not initialized); tests pass
    them explicitly to simulate ranks. ``epoch`` selects the training shuffle and random windows; the
    data module's loader sets it before every pass. Items are dicts of tensors and strings (one row of
    the batches documented in :class:`TalkingHeadDataModule`).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        mode: Literal["stage1", "stage2"] = "stage1",
        fields: Sequence[str] | None = None,
        window: int = 50,
        stride: int | None = None,
        pairs_per_clip: int = 1,
        train: bool | None = None,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        index: dict | None = None,
        shards: list[dict] | None = None,
        skip_bad: bool = False,
    ):
        super().__init__()
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if mode not in ("stage1", "stage2"):
            raise ValueError(f"mode must be 'stage1' or 'stage2', got {mode!r}")
        allowed = STAGE1_FIELDS if mode == "stage1" else STAGE2_FIELDS
        self.fields = tuple(allowed if fields is None else fields)
        if set(self.fields) - set(allowed):
            raise ValueError(f"{mode} fields must come from {allowed}, got {self.fields}")
        if window < 1 or (stride is not None and stride < 1) or pairs_per_clip < 1:
            raise ValueError("window, stride and pairs_per_clip must be ≥ 1")
        self.root = Path(root)
        self.split, self.mode = split, mode
        self.window, self.stride = window, stride or window
        self.pairs_per_clip = pairs_per_clip
        self.train = split == "train" if train is None else train
        self.seed, self.epoch = seed, 0
        self.rank, self.world_size = rank, world_size
        index = load_index(self.root) if index is None else index
        shards = verify_shards(self.root, skip_bad=skip_bad, index=index) if shards is None else shards
        self.samples_per_frame = index["sample_rate"] / index["fps"]
        self._clips = index["clips"]
        wanted = set(index["splits"][split])
        usable = {cid for cid in wanted if self._usable(self._clips[cid])}
        if len(usable) < len(wanted):
            log.info(
                "%s/%s: skipping %d of %d clips too short or without frames for %s",
                self.root,
                split,
                len(wanted) - len(usable),
                len(wanted),
                mode,
            )
        self._shard_clips = [(entry["name"], [cid for cid in entry["clip_ids"] if cid in usable]) for entry in shards]
        self._shard_clips = [(name, clip_ids) for name, clip_ids in self._shard_clips if clip_ids]

    def _usable(self, clip: dict) -> bool:
        if self.mode == "stage1":
            return clip["num_frames"] >= self.window
        return clip["has_frames"] and clip["num_frames"] >= 2

    def _clip_items(self, clip_id: str) -> list[tuple[str, int, int]]:
        """(clip id, a, b): stage 1 (start, -) and stage 2 (reference, driven); -1 means random."""
        frames = self._clips[clip_id]["num_frames"]
        if self.mode == "stage1":
            starts = [-1] if self.train else range(0, frames - self.window + 1, self.stride)
            return [(clip_id, start, -1) for start in starts]
        if self.train:
            return [(clip_id, -1, -1)] * self.pairs_per_clip
        drivens = range(self.stride, frames, self.stride) or [1]
        return [(clip_id, 0, driven) for driven in drivens]

    def _rank_and_size(self) -> tuple[int, int]:
        if self.rank is not None and self.world_size is not None:
            return self.rank, self.world_size
        return _distributed_rank_and_size()

    def partition(self, rank: int, world_size: int, worker: int, num_workers: int) -> list[tuple[str, str, int, int]]:
        """Items (shard name, clip id, a, b) of one (rank, worker) for the current epoch, in read order."""
        groups = [
            [(name, *item) for cid in clip_ids for item in self._clip_items(cid)]
            for name, clip_ids in self._shard_clips
        ]
        if self.train:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(groups))
            groups = [groups[i] for i in order]
        count = world_size * num_workers
        if self.train and len(groups) >= count:
            parts = [[item for group in groups[p::count] for item in group] for p in range(count)]
        else:
            flat = [item for group in groups for item in group]
            parts = [flat[p::count] for p in range(count)]
        if world_size > 1:
            shortest = min(len(part) for part in parts)
            parts = [part[:shortest] for part in parts]
        mine = parts[rank * num_workers + worker]
        if self.train:
            mine = _shuffle_in_shard_blocks(mine, np.random.default_rng([self.seed, self.epoch, rank, worker]))
        return mine

    def __iter__(self) -> Iterator[dict]:
        rank, world_size = self._rank_and_size()
        info = get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        rng = np.random.default_rng([self.seed, self.epoch, rank, worker, 1])
        readers: OrderedDict[str, ShardReader] = OrderedDict()
        try:
            for shard, clip_id, a, b in self.partition(rank, world_size, worker, num_workers):
                reader = self._reader(readers, shard)
                if self.mode == "stage1":
                    yield self._window(reader, clip_id, a, rng)
                else:
                    yield self._pair(reader, clip_id, a, b, rng)
        finally:
            for reader in readers.values():
                reader.close()

    def _reader(self, readers: OrderedDict[str, ShardReader], shard: str) -> ShardReader:
        if shard in readers:
            readers.move_to_end(shard)
        else:
            if len(readers) >= _MAX_OPEN_SHARDS:
                readers.popitem(last=False)[1].close()
            readers[shard] = ShardReader(self.root / shard)
        return readers[shard]

    def _window(self, reader: ShardReader, clip_id: str, start: int, rng: np.random.Generator) -> dict:
        clip = self._clips[clip_id]
        if start < 0:
            start = int(rng.integers(0, clip["num_frames"] - self.window + 1))
        item = {"clip_id": clip_id, "identity": clip["identity_id"], "start": torch.tensor(start)}
        motion_names = [name for name in MOTION_FIELDS if name in self.fields]
        if motion_names:
            motion = decode_motion(reader.read(clip_id, MOTION_KEY), motion_names)
            for name, value in motion.items():
                item[name] = torch.from_numpy(value if name == "alpha" else value[start : start + self.window])
        if "audio" in self.fields:
            audio = decode_audio(reader.read(clip_id, AUDIO_KEY))
            first = round(start * self.samples_per_frame)
            length = round(self.window * self.samples_per_frame)
            span = np.zeros(length, np.float32)
            chunk = audio[first : first + length]
            span[: chunk.size] = chunk
            item["audio"] = torch.from_numpy(span)
        return item

    def _pair(self, reader: ShardReader, clip_id: str, reference: int, driven: int, rng: np.random.Generator) -> dict:
        clip = self._clips[clip_id]
        if reference < 0:
            reference, driven = (int(i) for i in rng.choice(clip["num_frames"], size=2, replace=False))
        item = {
            "clip_id": clip_id,
            "identity": clip["identity_id"],
            "reference_index": torch.tensor(reference),
            "driven_index": torch.tensor(driven),
        }
        for role, frame in (("reference", reference), ("driven", driven)):
            image = decode_frame(reader.read(clip_id, frame_key(frame)))
            item[f"{role}_frame"] = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
        if self.fields:
            motion = decode_motion(reader.read(clip_id, MOTION_KEY), self.fields)
            for name, value in motion.items():
                if name == "alpha":
                    item["alpha"] = torch.from_numpy(value)
                    continue
                item[f"reference_{name}"] = torch.from_numpy(value[reference])
                item[f"driven_{name}"] = torch.from_numpy(value[driven])
        return item


class _EpochDataLoader(DataLoader):
    """DataLoader that sets its dataset's epoch before every pass (new shuffle and random windows)."""

    def __init__(self, dataset: ShardWindowDataset, epoch_fn: Callable[[], int], **kwargs):
        super().__init__(dataset, **kwargs)
        self._epoch_fn = epoch_fn

    def __iter__(self):
        self.dataset.epoch = self._epoch_fn()
        return super().__iter__()


class TalkingHeadDataModule(lightning.LightningDataModule):
    """One data module for all four training stages, reading the shards in ``root``.

    ``mode="stage1"`` (FacialMotion, PoseVQVAE, PoseMapper) yields windows of ``window`` frames: a random
    start per clip and epoch for training, starts 0, stride, 2·stride, … for val/test. The audio span of
    a window starting at frame s is samples [s·sr/fps, (s + T)·sr/fps), i.e. [640·s, 640·(s + T)) at
    25 fps and 16 kHz (zero-padded if the clip's audio ends up to one frame early). Batch, with only the
    requested ``fields`` of ``audio, alpha, beta, pose, lip_offsets, landmarks`` (default: all)::

        audio        (B, T·sr/fps) float32      alpha        (B, K) float32
        beta         (B, T, 52) float32         pose         (B, T, 6) float32 (pitch, yaw, roll, tx, ty, tz)
        lip_offsets  (B, T, L, 3) float32       landmarks    (B, T, N, 2) float32, pixels of the 256² crop
        start        (B,) int64 first frame     clip_id, identity: list[str] of length B

    ``mode="stage2"`` (MotionVAE + generator) yields (reference, driven) frame pairs of one clip:
    ``pairs_per_clip`` random pairs of distinct frames per clip and epoch for training; reference 0 with
    driven stride, 2·stride, … for val/test. Batch (``fields`` ⊆ motion fields, default: all)::

        reference_frame, driven_frame          (B, 3, H, W) float32 in [0, 1] (H = W = 256)
        alpha                                  (B, K)
        reference_beta, driven_beta            (B, 52)
        reference_pose, driven_pose            (B, 6)
        reference_lip_offsets, driven_…        (B, L, 3)
        reference_landmarks, driven_landmarks  (B, N, 2)
        reference_index, driven_index          (B,) int64;  clip_id, identity: list[str]

    ``stride`` defaults to ``window``. Shards are verified in :meth:`setup` (size, tar structure and,
    with ``verify_checksums``, sha256); a bad shard raises :class:`~talkinghead.data.shards.CorruptShardError`
    naming it, or with ``skip_bad`` is skipped with a warning. Distribution over DDP ranks and workers,
    and short clips: see :mod:`talkinghead.data.datamodule`.
    """

    def __init__(
        self,
        root: str,
        fields: list[str] | None = None,
        window: int = 50,
        stride: int | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        mode: Literal["stage1", "stage2"] = "stage1",
        pairs_per_clip: int = 1,
        skip_bad: bool = False,
        verify_checksums: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.root = Path(root)
        self.fields = fields
        self.window, self.stride = window, stride
        self.batch_size, self.num_workers = batch_size, num_workers
        self.mode, self.pairs_per_clip = mode, pairs_per_clip
        self.skip_bad, self.verify_checksums, self.seed = skip_bad, verify_checksums, seed
        self.datasets: dict[str, ShardWindowDataset] = {}
        self._passes = 0

    def setup(self, stage: str | None = None) -> None:
        """Load the index, verify the shards and build the three split datasets (once)."""
        if self.datasets:
            return
        index = load_index(self.root)
        shards = verify_shards(self.root, skip_bad=self.skip_bad, checksums=self.verify_checksums, index=index)
        rank, world_size = (None, None) if self.trainer is None else (self.trainer.global_rank, self.trainer.world_size)
        for split in SPLITS:
            self.datasets[split] = ShardWindowDataset(
                self.root,
                split,
                mode=self.mode,
                fields=self.fields,
                window=self.window,
                stride=self.stride,
                pairs_per_clip=self.pairs_per_clip,
                seed=self.seed,
                rank=rank,
                world_size=world_size,
                index=index,
                shards=shards,
            )

    def _epoch(self) -> int:
        if self.trainer is not None:
            return self.trainer.current_epoch
        self._passes += 1
        return self._passes - 1

    def _loader(self, split: str) -> DataLoader:
        self.setup()
        return _EpochDataLoader(
            self.datasets[split],
            self._epoch if split == "train" else int,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=False,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
