"""``TalkingHeadDataModule``: windows (stage 1) and frame pairs (stage 2) from the clip shards of one or more corpora.

Work is planned from the corpora's ``index.json`` files alone, so every DDP rank and dataloader worker
computes the same plan for an epoch and takes its own part of it:

* an *item* is one window (stage 1) or one frame pair (stage 2) of one clip of the split. Training draws
  items in proportion to a clip's length, so an epoch is about one pass over the footage: a clip of F
  frames gives ``max(1, (F − T + 1) // T)`` random windows of T frames (one per T possible starts: at
  T = 50 a 30-s clip gives 14, a 2-s clip 1, and the embedded corpus's 4-s clips keep the single window
  per epoch the tiny configs were tuned with) and ``max(pairs_per_clip, F // frames_per_pair)`` random
  pairs (one per second by default, at least ``pairs_per_clip``). Val/test items are fixed: windows
  starting at 0, stride, 2·stride, … and pairs (0, stride), (0, 2·stride), …;
* ``root`` may list several corpora (e.g. HDTF and VoxCeleb2), each split as its own index says. A
  training weight w draws round(w · N) of a corpus's N items per epoch: every item ⌊w⌋ times plus a
  subset chosen with the epoch's seed. Val/test use every item of every corpus once;
* the epoch's items are grouped by shard (training: shard order shuffled with (seed, epoch), a shard's
  items interleaved over its clips) and cut into contiguous runs, one per (rank, worker) partition, so a
  worker opens only the few shards its run spans; training then shuffles each partition within blocks of
  at most ``_MAX_OPEN_SHARDS`` shards;
* under DDP every rank must run the same number of batches, or the collectives hang. Training therefore
  gives every (rank, worker) partition ⌈N/P⌉ items (P = world_size · num_workers) by serving the first
  P·⌈N/P⌉ − N items of the epoch's order twice: fewer than P repeats, none dropped. Val/test pad only to
  equal ranks — fewer than world_size repeated items, so a metric over N items is off by less than
  world_size/N — and every rank splits its share between its workers alike. One process repeats nothing;
* order and random windows are a function of (seed, epoch, rank, worker) only. The loader sets the
  dataset's epoch (``trainer.current_epoch``, which a resumed run restores) before every pass, and the
  workers, which are not persistent, receive the dataset with that epoch when the pass starts;
* a run resumed from a checkpoint written mid-epoch continues that epoch where it stopped: the training
  loader's state in the checkpoint holds the epoch and the batches of it taken, and after the restore each
  worker leaves out the items it had served in them (drawing their random windows all the same), so the
  resumed run sees the batches an uninterrupted run sees (see :class:`_EpochDataLoader`).

For scale (:meth:`TalkingHeadDataModule.plan_summary`): an HDTF-sized index of 362 clips of 159 s (16 h;
290 train clips) plans 11 020 training windows per epoch at ``facial_motion.yaml``'s window of 100, i.e.
88 steps of batch 16 per epoch on 8 GPUs with 4 workers each, and 46 110 pairs (364 steps) at ``motion_vae.yaml``'s.

Clips shorter than the window (stage 1), or with fewer than two frames or no frames (stage 2), are
skipped and counted in a log line, never padded. A split that a stage needs (train for fit, and val when
it holds clips; val for validate; the test split for test) without a usable clip stops
:meth:`TalkingHeadDataModule.setup` with :class:`EmptySplitError`, which names the split, the window and the longest
clip.

The test loop reads the ``test`` split, or with ``test_split: all`` (:data:`ALL_CLIPS`) every clip of the corpora
once: the way to score a checkpoint on a corpus held out as a whole, such as a ``talkinghead-data synth`` corpus of
a seed no stage trained on, whose identities the split fractions would otherwise mostly assign to train.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import cycle, groupby, islice
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
ALL_CLIPS = "all"  # a split name: every clip of the index, train, val and test
SPLIT_NAMES = (*SPLITS, ALL_CLIPS)

# Lightning warns about any iterable dataset whose loader has a length, since workers that each serve the whole
# dataset make it wrong; :class:`_EpochDataLoader`'s length counts exactly what its rank's workers serve.
warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined", category=UserWarning)

Item = tuple[str, str, int, int]
"""(shard path, clip id, a, b): stage 1 (start, -) and stage 2 (reference, driven); -1 means random."""


class EmptySplitError(ValueError):
    """A split a stage needs is empty or has no clip usable for the window; the message names both."""


@dataclass(frozen=True)
class Corpus:
    """One shard folder: its index, the index entries of its good shards, its training weight."""

    root: Path
    index: dict
    shards: list[dict]
    weight: float = 1.0


def _distributed_rank_and_size() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _worker_id_and_count() -> tuple[int, int]:
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def deal(items: Sequence, world_size: int, num_workers: int, equal_workers: bool) -> list[list]:
    """Cut ``items`` into contiguous (rank, worker) partitions, rank-major, padding by wrapping around.

    Under DDP (``world_size`` > 1) every rank gets the same number of items, and its workers split them
    alike on every rank; ``equal_workers`` makes every partition the same length instead. Either way the
    padding is the fewest repeats that allows it. One process (``world_size`` 1) repeats nothing.
    """
    count = world_size * num_workers
    if not items:
        return [[] for _ in range(count)]
    units = count if equal_workers and world_size > 1 else world_size
    per_unit = math.ceil(len(items) / units)
    padded = list(islice(cycle(items), per_unit * units))
    per_rank = per_unit * units // world_size
    per_worker = math.ceil(per_rank / num_workers)
    parts = []
    for rank in range(world_size):
        share = padded[rank * per_rank : (rank + 1) * per_rank]
        parts.extend(share[worker * per_worker : (worker + 1) * per_worker] for worker in range(num_workers))
    return parts


def _interleave(lists: list[list]) -> list:
    """[a0, b0, c0, a1, b1, …]: the k-th elements of every list before any (k+1)-th."""
    longest = max((len(items) for items in lists), default=0)
    return [items[k] for k in range(longest) for items in lists if k < len(items)]


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


def _as_list(value, count: int, single: Callable[[object], bool]) -> list:
    """``value`` for each of ``count`` corpora: ``[value]`` when it is one corpus's, ``None`` for all when unset."""
    if value is None:
        return [None] * count
    values = [value] if single(value) else list(value)
    if len(values) != count:
        raise ValueError(f"expected one value per root ({count}), got {len(values)}")
    return values


def load_corpora(
    root: str | Path | Sequence[str | Path],
    weights: Sequence[float] | None = None,
    index: dict | Sequence[dict] | None = None,
    shards: list[dict] | Sequence[list[dict]] | None = None,
    **verify,
) -> list[Corpus]:
    """The corpora of ``root`` (one folder or a list); shards are verified (``verify`` → ``verify_shards``)
    unless their entries are given. All corpora must share one fps and sample rate."""
    roots = [Path(root)] if isinstance(root, (str, Path)) else [Path(r) for r in root]
    if not roots:
        raise ValueError("root lists no shard folder")
    weights = [1.0] * len(roots) if weights is None else [float(w) for w in weights]
    if len(weights) != len(roots) or any(not math.isfinite(w) or w < 0 for w in weights):
        raise ValueError(f"root_weights must be one weight ≥ 0 per root, got {weights} for {len(roots)} roots")
    indexes = _as_list(index, len(roots), lambda value: isinstance(value, dict))
    entries = _as_list(shards, len(roots), lambda value: not value or isinstance(value[0], dict))
    corpora = []
    for path, weight, corpus_index, corpus_shards in zip(roots, weights, indexes, entries, strict=True):
        corpus_index = load_index(path) if corpus_index is None else corpus_index
        if corpus_shards is None:
            corpus_shards = verify_shards(path, index=corpus_index, **verify)
        corpora.append(Corpus(path, corpus_index, corpus_shards, weight))
    rates = {(corpus.index["fps"], corpus.index["sample_rate"]) for corpus in corpora}
    if len(rates) > 1:
        raise ValueError(f"corpora mix fps/sample rates {sorted(rates)}; batches need one rate")
    return corpora


def split_clip_ids(index: dict, split: str) -> list[str]:
    """The clip ids of ``split`` in a corpus ``index``; :data:`ALL_CLIPS`: those of every split."""
    if split == ALL_CLIPS:
        return [cid for name in SPLITS for cid in index["splits"][name]]
    return index["splits"][split]


class ShardWindowDataset(IterableDataset):
    """Iterable dataset of stage-1 windows or stage-2 frame pairs of one split (see module docstring).

    ``root`` is a shard folder or a list of them (``weights``: their training weights; ``index`` and
    ``shards``, one per root, skip reading and verifying them). ``rank``/``world_size`` default to
    ``torch.distributed``'s (0/1 when not initialized) and the worker to ``get_worker_info()``'s; tests
    pass them to :meth:`partition` to simulate ranks and workers. ``epoch`` selects the training shuffle,
    repeats and random windows; the data module's loader sets it before every pass (:meth:`set_epoch`).
    ``resume`` (per worker of the coming pass: the worker whose partition it serves, and how many of that
    partition's first items it leaves out; ``None`` for a whole pass) is set by the loader for the pass that
    resumes an epoch (see :func:`resume_plan`); the left-out items still draw their random windows, so the rest
    are the items an uninterrupted pass serves.
    Items are dicts of tensors and strings (one row of the batches documented in
    :class:`TalkingHeadDataModule`).
    """

    def __init__(
        self,
        root: str | Path | Sequence[str | Path],
        split: str,
        mode: Literal["stage1", "stage2"] = "stage1",
        fields: Sequence[str] | None = None,
        window: int = 50,
        stride: int | None = None,
        pairs_per_clip: int = 1,
        frames_per_pair: int | None = 25,
        train: bool | None = None,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        index: dict | Sequence[dict] | None = None,
        shards: list[dict] | Sequence[list[dict]] | None = None,
        skip_bad: bool = False,
        weights: Sequence[float] | None = None,
    ):
        super().__init__()
        if split not in SPLIT_NAMES:
            raise ValueError(f"split must be one of {SPLIT_NAMES}, got {split!r}")
        if mode not in ("stage1", "stage2"):
            raise ValueError(f"mode must be 'stage1' or 'stage2', got {mode!r}")
        allowed = STAGE1_FIELDS if mode == "stage1" else STAGE2_FIELDS
        self.fields = tuple(allowed if fields is None else fields)
        if set(self.fields) - set(allowed):
            raise ValueError(f"{mode} fields must come from {allowed}, got {self.fields}")
        optional = [value for value in (stride, frames_per_pair) if value is not None]
        if min(window, pairs_per_clip, *optional) < 1:
            raise ValueError("window, stride, pairs_per_clip and frames_per_pair must be ≥ 1")
        self.corpora = load_corpora(root, weights, index, shards, skip_bad=skip_bad)
        self.root = self.corpora[0].root
        self.split, self.mode = split, mode
        self.window, self.stride = window, window if stride is None else stride
        self.pairs_per_clip, self.frames_per_pair = pairs_per_clip, frames_per_pair
        self.train = split == "train" if train is None else train
        self.seed, self.epoch = seed, 0
        self.resume: list[tuple[int, int]] | None = None
        self.rank, self.world_size = rank, world_size
        index = self.corpora[0].index
        self.samples_per_frame = index["sample_rate"] / index["fps"]
        self._clips: dict[str, dict] = {}
        self._shard_clips: list[list[tuple[str, list[str]]]] = [self._usable_shards(c) for c in self.corpora]

    def _usable_shards(self, corpus: Corpus) -> list[tuple[str, list[str]]]:
        """(shard path, usable clip ids of the split) of one corpus's good shards, in index order."""
        clips = corpus.index["clips"]
        wanted = set(split_clip_ids(corpus.index, self.split))
        usable = {cid for cid in wanted if self._usable(clips[cid])}
        if len(usable) < len(wanted):
            log.info(
                "%s/%s: skipping %d of %d clips too short or without frames for %s (window %d)",
                corpus.root,
                self.split,
                len(wanted) - len(usable),
                len(wanted),
                self.mode,
                self.window,
            )
        shard_clips = []
        for entry in corpus.shards:
            path = str(corpus.root / entry["name"])
            self._clips[path] = clips
            clip_ids = [cid for cid in entry["clip_ids"] if cid in usable]
            if clip_ids:
                shard_clips.append((path, clip_ids))
        return shard_clips

    def _usable(self, clip: dict) -> bool:
        if self.mode == "stage1":
            return clip["num_frames"] >= self.window
        return clip["has_frames"] and clip["num_frames"] >= 2

    def check_usable(self, allow_empty: bool = False) -> None:
        """Raise :class:`EmptySplitError` if the split has no usable clip (an empty one passes with ``allow_empty``)."""
        if any(self._shard_clips[c] for c in range(len(self.corpora))):
            return
        clips = [
            corpus.index["clips"][cid] for corpus in self.corpora for cid in split_clip_ids(corpus.index, self.split)
        ]
        roots = ", ".join(str(corpus.root) for corpus in self.corpora)
        if not clips:
            if allow_empty:
                return
            raise EmptySplitError(f"split {self.split!r} of {roots} is empty: no identity of the index is in it")
        longest = max(clip["num_frames"] for clip in clips)
        problem = f"is long enough for window {self.window}" if self.mode == "stage1" else "has ≥ 2 frames with images"
        count = f"{len(clips)} clip" + ("s" if len(clips) > 1 else "")
        raise EmptySplitError(
            f"split {self.split!r} of {roots}: no clip {problem} (longest clip: {longest} frames; {count} in the split)"
        )

    def clip_items(self, clip: dict) -> list[tuple[int, int]]:
        """The (a, b) of one clip's items this epoch (see :data:`Item`; the counts: module docstring)."""
        frames = clip["num_frames"]
        if self.mode == "stage1":
            if self.train:
                return [(-1, -1)] * max(1, (frames - self.window + 1) // self.window)
            return [(start, -1) for start in range(0, frames - self.window + 1, self.stride)]
        if self.train:
            by_length = frames // self.frames_per_pair if self.frames_per_pair else 0
            return [(-1, -1)] * max(self.pairs_per_clip, by_length)
        drivens = range(self.stride, frames, self.stride) or [1]
        return [(0, driven) for driven in drivens]

    def _shard_items(self, path: str, clip_ids: list[str]) -> list[Item]:
        per_clip = [[(path, cid, a, b) for a, b in self.clip_items(self._clips[path][cid])] for cid in clip_ids]
        return _interleave(per_clip) if self.train else [item for items in per_clip for item in items]

    def _weighted(self, groups: list[list[Item]], weight: float, corpus: int) -> list[list[Item]]:
        """round(weight · N) of a corpus's N items: each ⌊weight⌋ times plus an epoch-seeded subset, in shard groups."""
        flat = [item for group in groups for item in group]
        whole = int(weight)
        rest = round(weight * len(flat)) - whole * len(flat)
        rng = np.random.default_rng([self.seed, self.epoch, corpus, 2])
        picks = np.concatenate([np.repeat(np.arange(len(flat)), whole), rng.choice(len(flat), rest, replace=False)])
        chosen = [flat[i] for i in np.sort(picks, kind="stable")]
        return [list(group) for _, group in groupby(chosen, key=lambda item: item[0])]

    def epoch_items(self) -> list[Item]:
        """All items of the split for the current epoch over all corpora, in shard order, before dealing."""
        groups: list[list[Item]] = []
        for c, corpus in enumerate(self.corpora):
            corpus_groups = [self._shard_items(path, clip_ids) for path, clip_ids in self._shard_clips[c]]
            if self.train and corpus.weight != 1.0:
                corpus_groups = self._weighted(corpus_groups, corpus.weight, c)
            groups.extend(corpus_groups)
        if self.train:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(groups))
            groups = [groups[i] for i in order]
        return [item for group in groups for item in group]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _rank_and_size(self) -> tuple[int, int]:
        if self.rank is not None and self.world_size is not None:
            return self.rank, self.world_size
        return _distributed_rank_and_size()

    def partition(self, rank: int, world_size: int, worker: int, num_workers: int) -> list[Item]:
        """Items of one (rank, worker) for the current epoch, in read order (see :func:`deal`)."""
        parts = deal(self.epoch_items(), world_size, num_workers, equal_workers=self.train)
        mine = parts[rank * num_workers + worker]
        if self.train:
            mine = _shuffle_in_shard_blocks(mine, np.random.default_rng([self.seed, self.epoch, rank, worker]))
        return mine

    def __iter__(self) -> Iterator[dict]:
        """This (rank, worker)'s items of the epoch, or with :attr:`resume` set the rest of the partition it names
        (read when the iterator is made, so the loader can clear it right after)."""
        rank, world_size = self._rank_and_size()
        worker, num_workers = _worker_id_and_count()
        worker, skip = self.resume[worker] if self.resume else (worker, 0)
        return self._serve(self.partition(rank, world_size, worker, num_workers), skip, rank, worker)

    def _serve(self, items: list[Item], skip: int, rank: int, worker: int) -> Iterator[dict]:
        rng = np.random.default_rng([self.seed, self.epoch, rank, worker, 1])
        readers: OrderedDict[str, ShardReader] = OrderedDict()
        try:
            for position, (shard, clip_id, a, b) in enumerate(items):
                clip = self._clips[shard][clip_id]
                a, b = self._draw(clip, a, b, rng)  # skipped items draw too, so later items keep their windows
                if position < skip:
                    continue
                reader = self._reader(readers, shard)
                if self.mode == "stage1":
                    yield self._window(reader, clip_id, clip, a)
                else:
                    yield self._pair(reader, clip_id, clip, a, b)
        finally:
            for reader in readers.values():
                reader.close()

    def _draw(self, clip: dict, a: int, b: int, rng: np.random.Generator) -> tuple[int, int]:
        """The item's (a, b) with a random window start or frame pair drawn for -1 (see :data:`Item`)."""
        if a >= 0:
            return a, b
        if self.mode == "stage1":
            return int(rng.integers(0, clip["num_frames"] - self.window + 1)), b
        reference, driven = (int(i) for i in rng.choice(clip["num_frames"], size=2, replace=False))
        return reference, driven

    def _reader(self, readers: OrderedDict[str, ShardReader], shard: str) -> ShardReader:
        if shard in readers:
            readers.move_to_end(shard)
        else:
            if len(readers) >= _MAX_OPEN_SHARDS:
                readers.popitem(last=False)[1].close()
            readers[shard] = ShardReader(shard)
        return readers[shard]

    def _window(self, reader: ShardReader, clip_id: str, clip: dict, start: int) -> dict:
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

    def _pair(self, reader: ShardReader, clip_id: str, clip: dict, reference: int, driven: int) -> dict:
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


def resume_plan(batches: int, lengths: Sequence[int], batch_size: int) -> list[tuple[int, int]]:
    """Per worker, (partition it serves, items of it to leave out) so that a pass continues the pass over
    partitions of ``lengths`` items (one per worker) that stopped after ``batches`` batches.

    A DataLoader batches each worker's items on its own (a worker's last batch may be short) and takes batches
    from its workers in turn, passing over a worker that has run out: batch i comes from worker i mod W while
    every worker has batches left. A partition leaves out the items of its batches among the first ``batches``,
    and the workers are rotated so that worker 0 serves the partition the next batch comes from: its turn, and
    every later one, then falls where it fell in the uninterrupted pass. One entry for a loader without workers.
    """
    count = len(lengths)
    per_worker = [math.ceil(length / batch_size) for length in lengths]
    order = [worker for turn in range(max(per_worker)) for worker in range(count) if turn < per_worker[worker]]
    first = order[batches] if batches < len(order) else 0
    plan = []
    for worker in range(count):
        part = (first + worker) % count
        plan.append((part, min(order[:batches].count(part) * batch_size, lengths[part])))
    return plan


class _EpochDataLoader(DataLoader):
    """DataLoader that sets its dataset's epoch before every pass (new shuffle and random windows) and can resume
    a pass where a checkpoint left it.

    Its workers are not persistent, so each pass pickles the dataset with the new epoch into fresh workers. It has
    its own ``generator``, seeded from (seed, epoch, rank) at every pass: making an iterator draws the workers'
    base seed from it instead of from the global torch RNG, so the workers' seeds depend on the epoch alone and
    the global RNG, which training draws from, is left alone (a resumed run makes its first iterator at another
    point of the run than an uninterrupted one).

    With ``taken`` (the trainer's count of training batches processed so far, over all passes) it is resumable the
    way Lightning asks of a training loader. :meth:`state_dict` (in every checkpoint) records the pass's epoch and
    the batches of it processed; after :meth:`load_state_dict` the next pass continues that epoch without those
    batches (see :func:`resume_plan`), or starts the next epoch when they were all of it. Lightning restores its
    loop counters but restarts a loader from its beginning, so without this a run resumed mid-epoch would train on
    the epoch's first batches a second time.
    """

    def __init__(
        self,
        dataset: ShardWindowDataset,
        epoch_fn: Callable[[], int],
        taken: Callable[[], int] | None = None,
        **kwargs,
    ):
        super().__init__(dataset, generator=torch.Generator(), **kwargs)
        self._epoch_fn, self._taken = epoch_fn, taken
        self._pass_epoch, self._taken_before = 0, 0
        self._resume: dict | None = None

    def _partition_lengths(self, epoch: int) -> list[int]:
        dataset = self.dataset
        previous, dataset.epoch = dataset.epoch, epoch
        rank, world_size = dataset._rank_and_size()
        workers = max(1, self.num_workers)
        parts = deal(dataset.epoch_items(), world_size, workers, equal_workers=dataset.train)
        dataset.epoch = previous
        return [len(part) for part in parts[rank * workers : (rank + 1) * workers]]

    def __len__(self) -> int:
        """Batches of a whole pass on this rank. Every epoch of a split has as many (corpus weights fix its item
        count), so Lightning can show progress totals and ``trainer.estimated_stepping_batches``. A pass that
        resumes an epoch serves the rest of them: Lightning counts the ones processed before the checkpoint."""
        return sum(math.ceil(length / self.batch_size) for length in self._partition_lengths(self.dataset.epoch))

    def _start(self) -> tuple[int, int]:
        """(epoch, batches to leave out) of the coming pass: the restored position, if any, else a whole epoch. A
        position after an epoch's last batch starts the next epoch, which ``trainer.current_epoch`` does not count
        yet when Lightning makes the first iterator of a run resumed from a checkpoint written at the epoch's end."""
        epoch, resume, self._resume = self._epoch_fn(), self._resume, None
        if resume is None or resume["epoch"] < epoch:
            return epoch, 0
        lengths = self._partition_lengths(resume["epoch"])
        if resume["batches"] >= sum(math.ceil(length / self.batch_size) for length in lengths):
            return resume["epoch"] + 1, 0
        return resume["epoch"], resume["batches"]

    def __iter__(self):
        epoch, batches = self._start()
        dataset = self.dataset
        dataset.set_epoch(epoch)
        rank, _ = dataset._rank_and_size()
        self.generator.manual_seed(int(np.random.SeedSequence([dataset.seed, epoch, rank, 3]).generate_state(1)[0]))
        dataset.resume = resume_plan(batches, self._partition_lengths(epoch), self.batch_size) if batches else None
        self._pass_epoch = epoch
        self._taken_before = (self._taken() if self._taken else 0) - batches
        try:
            return super().__iter__()
        finally:
            dataset.resume = None  # the iterator (and its workers) has read it; later passes are whole

    def state_dict(self) -> dict:
        taken = self._taken() - self._taken_before if self._taken else 0
        return {"epoch": self._pass_epoch, "batches": taken}

    def load_state_dict(self, state: dict) -> None:
        self._resume = dict(state) if state else None


@dataclass(frozen=True)
class EpochPlan:
    """What one epoch of a split serves: ``items`` planned (after corpus weights), ``served`` over all ranks and
    workers (items plus padding repeats), and the batches each rank runs — its optimizer steps per epoch for
    training (without gradient accumulation)."""

    split: str
    items: int
    served: int
    world_size: int
    num_workers: int
    batch_size: int
    batches_per_rank: int

    def __str__(self) -> str:
        return (
            f"{self.split}: {self.items} items per epoch ({self.served} served by {self.world_size} ranks × "
            f"{self.num_workers} workers), {self.batches_per_rank} batches of ≤ {self.batch_size} per rank and epoch"
        )


class TalkingHeadDataModule(lightning.LightningDataModule):
    """One data module for all four training stages, reading the shards in ``root``.

    ``mode="stage1"`` (FacialMotion, PoseVQVAE, PoseMapper) yields windows of ``window`` frames: random
    starts for training (more windows for longer clips, see :mod:`talkinghead.data.datamodule`), starts
    0, stride, 2·stride, … for val/test. The audio span of a window starting at frame s is samples
    [s·sr/fps, (s + T)·sr/fps), i.e. [640·s, 640·(s + T)) at 25 fps and 16 kHz (zero-padded if the clip's
    audio ends up to one frame early). Batch, with only the requested ``fields`` of ``audio, alpha, beta,
    pose, lip_offsets, landmarks`` (default: all)::

        audio        (B, T·sr/fps) float32      alpha        (B, K) float32
        beta         (B, T, 52) float32         pose         (B, T, 6) float32 (pitch, yaw, roll, tx, ty, tz)
        lip_offsets  (B, T, L, 3) float32       landmarks    (B, T, N, 2) float32, pixels of the 256² crop
        start        (B,) int64 first frame     clip_id, identity: list[str] of length B

    ``mode="stage2"`` (MotionVAE + generator) yields (reference, driven) frame pairs of one clip:
    ``max(pairs_per_clip, F // frames_per_pair)`` random pairs of distinct frames per clip of F frames and
    epoch for training (``frames_per_pair: null``: ``pairs_per_clip``); reference 0 with driven stride,
    2·stride, … for val/test. Batch (``fields`` ⊆ motion fields, default: all)::

        reference_frame, driven_frame          (B, 3, H, W) float32 in [0, 1] (H = W = 256)
        alpha                                  (B, K)
        reference_beta, driven_beta            (B, 52)
        reference_pose, driven_pose            (B, 6)
        reference_lip_offsets, driven_…        (B, L, 3)
        reference_landmarks, driven_landmarks  (B, N, 2)
        reference_index, driven_index          (B,) int64;  clip_id, identity: list[str]

    ``root`` is one shard folder or a list of them (``root: [shards/hdtf, shards/vox2]``) with
    ``root_weights`` (default 1 each) setting how many of each corpus's training items an epoch draws;
    :attr:`root` is the first folder. ``stride`` defaults to ``window``. Shards are verified in
    :meth:`setup` (size, tar structure and, with ``verify_checksums``, sha256; shards unchanged since
    a verification recorded in ``.verified.json`` are not read again, and only rank 0 writes that record);
    a bad shard raises :class:`~talkinghead.data.shards.CorruptShardError` naming it, or with ``skip_bad``
    is skipped with a warning. :meth:`plan_summary` states items and steps per epoch for a world size.
    ``test_split`` is what the test loop reads: ``test`` (default), ``val``, ``train`` or ``all`` (every clip of
    the corpora, for a corpus held out as a whole; module docstring).
    Distribution over DDP ranks and workers, epochs, and short clips: see :mod:`talkinghead.data.datamodule`.
    """

    def __init__(
        self,
        root: str | list[str],
        fields: list[str] | None = None,
        window: int = 50,
        stride: int | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        mode: Literal["stage1", "stage2"] = "stage1",
        pairs_per_clip: int = 1,
        frames_per_pair: int | None = 25,
        skip_bad: bool = False,
        verify_checksums: bool = True,
        seed: int = 0,
        root_weights: list[float] | None = None,
        test_split: Literal["train", "val", "test", "all"] = "test",
    ):
        super().__init__()
        if test_split not in SPLIT_NAMES:
            raise ValueError(f"test_split must be one of {SPLIT_NAMES}, got {test_split!r}")
        self.save_hyperparameters()
        self.roots = [Path(root)] if isinstance(root, (str, Path)) else [Path(path) for path in root]
        self.root = self.roots[0]
        self.root_weights = root_weights
        self.fields = fields
        self.window, self.stride = window, stride
        self.batch_size, self.num_workers = batch_size, num_workers
        self.mode, self.pairs_per_clip, self.frames_per_pair = mode, pairs_per_clip, frames_per_pair
        self.skip_bad, self.verify_checksums, self.seed = skip_bad, verify_checksums, seed
        self.test_split = test_split
        self.datasets: dict[str, ShardWindowDataset] = {}
        self._passes = 0

    def _rank_and_size(self) -> tuple[int | None, int | None]:
        return (None, None) if self.trainer is None else (self.trainer.global_rank, self.trainer.world_size)

    def _build(self, verify: bool) -> dict[str, ShardWindowDataset]:
        """The three split datasets, and :data:`ALL_CLIPS`'s when the test loop reads it; ``verify`` checks the
        shards first (else trusts every indexed shard)."""
        rank, world_size = self._rank_and_size()
        indexes = [load_index(root) for root in self.roots]
        shards = None if verify else [index["shards"] for index in indexes]
        verify_args = {"skip_bad": self.skip_bad, "checksums": self.verify_checksums}
        verify_args["cache"] = "write" if not rank else "read"  # rank 0 (or no trainer) records what it verified
        corpora = load_corpora(self.roots, self.root_weights, indexes, shards, **verify_args)
        settings = {
            "mode": self.mode,
            "fields": self.fields,
            "window": self.window,
            "stride": self.stride,
            "pairs_per_clip": self.pairs_per_clip,
            "frames_per_pair": self.frames_per_pair,
            "seed": self.seed,
            "rank": rank,
            "world_size": world_size,
        }
        return {
            split: ShardWindowDataset(
                [c.root for c in corpora],
                split,
                index=[c.index for c in corpora],
                shards=[c.shards for c in corpora],
                weights=[c.weight for c in corpora],
                **settings,
            )
            for split in dict.fromkeys((*SPLITS, self.test_split))
        }

    def setup(self, stage: str | None = None) -> None:
        """Load the indexes, verify the shards and build the split datasets (once); then check that the splits
        ``stage`` needs have usable clips (:class:`EmptySplitError` otherwise)."""
        if not self.datasets:
            self.datasets = self._build(verify=True)
        if stage == "fit":
            self.datasets["train"].check_usable()
            self.datasets["val"].check_usable(allow_empty=True)
            rank, world_size = self._rank_and_size()
            if not rank:
                log.info("%s", self.plan_summary(world_size or 1))
        elif stage == "validate":
            self.datasets["val"].check_usable()
        elif stage == "test":
            self.datasets[self.test_split].check_usable()

    def plan_summary(self, world_size: int = 1, split: str = "train", epoch: int = 0) -> EpochPlan:
        """Items and batches (steps) per epoch of ``split`` on ``world_size`` ranks, from the indexes alone
        (no shard is read; the datasets of :meth:`setup` when it has run)."""
        datasets = self.datasets or self._build(verify=False)
        dataset = datasets[split]
        previous, dataset.epoch = dataset.epoch, epoch
        items = len(dataset.epoch_items())
        dataset.epoch = previous
        workers = max(1, self.num_workers)
        parts = deal(range(items), world_size, workers, equal_workers=dataset.train)
        batches = sum(math.ceil(len(part) / self.batch_size) for part in parts[:workers])
        served = sum(len(part) for part in parts)
        return EpochPlan(split, items, served, world_size, workers, self.batch_size, batches)

    def _epoch(self) -> int:
        if self.trainer is not None:
            return self.trainer.current_epoch
        self._passes += 1
        return self._passes - 1

    def _taken(self) -> int:
        """Training batches the fit loop has processed over the whole run (checkpointed by Lightning; a batch it
        had taken but not processed when a checkpoint was written is one it runs again after the restore); 0 with
        no fit loop (no trainer, or a stand-in for one)."""
        fit_loop = getattr(self.trainer, "fit_loop", None)
        return 0 if fit_loop is None else fit_loop.epoch_loop.batch_progress.total.processed

    def _loader(self, split: str) -> DataLoader:
        self.setup()
        return _EpochDataLoader(
            self.datasets[split],
            self._epoch if split == "train" else int,
            self._taken if split == "train" else None,
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
        return self._loader(self.test_split)
