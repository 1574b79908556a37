"""The data module at scale: every item served under DDP × workers, length-proportional epochs, epoch plans,
several weighted corpora, clear empty-split errors and a deterministic order per (seed, epoch).

Most tests plan from an index written in memory (no shard is read), so corpora of HDTF size cost nothing.
"""

import math
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_shards import make_clip, write_corpus

from talkinghead.data.datamodule import EmptySplitError, ShardWindowDataset, TalkingHeadDataModule
from talkinghead.data.shards import INDEX_FORMAT_VERSION, split_identities, write_json_atomic
from talkinghead.lightning.cli import main as cli_main
from tests.helpers import CSV_LOGGER_CONFIG

ROOT = Path(__file__).resolve().parents[1]


def synthetic_index(shard_sizes: list[int], frames, prefix: str = "c", split_by_identity: bool = False) -> dict:
    """An ``index.json`` dict of ``len(shard_sizes)`` shards; clip i has ``frames(i)`` frames and, unless
    ``split_by_identity``, every clip is in train, val and test alike (the planner reads only the index)."""
    shards, clips, number = [], {}, 0
    for n, size in enumerate(shard_sizes):
        ids = [f"{prefix}{number + k:05d}" for k in range(size)]
        for clip_id in ids:
            clips[clip_id] = {"identity_id": f"id-{clip_id}", "num_frames": frames(number), "has_frames": True}
            clips[clip_id] |= {"fps": 25, "sample_rate": 16000, "shard": f"shard-{n:06d}.tar"}
            number += 1
        entry = {"name": f"shard-{n:06d}.tar", "num_samples": size, "num_bytes": 0, "sha256": ""}
        shards.append(entry | {"clip_ids": ids})
    if split_by_identity:
        owner = split_identities(clip["identity_id"] for clip in clips.values())
        splits = {s: sorted(c for c in clips if owner[clips[c]["identity_id"]] == s) for s in ("train", "val", "test")}
    else:
        splits = dict.fromkeys(("train", "val", "test"), sorted(clips))
    header = {"format_version": INDEX_FORMAT_VERSION, "fps": 25, "sample_rate": 16000, "identities": {}}
    return header | {"shards": shards, "clips": clips, "splits": splits}


def dataset(index: dict | list[dict], split: str = "train", **kwargs) -> ShardWindowDataset:
    indexes = index if isinstance(index, list) else [index]
    roots = [f"corpus{i}" for i in range(len(indexes))]
    shards = [entry["shards"] for entry in indexes]
    return ShardWindowDataset(roots, split, index=indexes, shards=shards, **kwargs)


def served(data: ShardWindowDataset, world_size: int, num_workers: int) -> list[list[tuple]]:
    """The partitions of every simulated (rank, worker) pair, rank-major."""
    return [data.partition(r, world_size, w, num_workers) for r in range(world_size) for w in range(num_workers)]


# 33 shards of 8 clips but one of 3 (the 21st), clips of 50–449 frames: 8 ranks × 4 workers.
UNEVEN = synthetic_index([8] * 20 + [3] + [8] * 12, frames=lambda i: 50 + (i * 37) % 400)


@pytest.mark.parametrize("epoch", [0, 1])
def test_every_training_item_is_served_across_eight_ranks_and_four_workers(epoch):
    data = dataset(UNEVEN, window=50)
    data.epoch = epoch
    expected = Counter({cid: max(1, (c["num_frames"] - 49) // 50) for cid, c in UNEVEN["clips"].items()})
    items = sum(expected.values())
    assert (len(UNEVEN["clips"]), items) == (259, 938)
    parts = served(data, world_size=8, num_workers=4)
    counts = Counter(cid for part in parts for _, cid, _, _ in part)
    assert all(counts[cid] >= windows for cid, windows in expected.items())  # every item at least once
    assert {len(part) for part in parts} == {math.ceil(items / 32)} == {30}  # equal partitions: equal batches
    assert counts.total() == 30 * 32 == 960  # 22 repeats; cutting to the shortest partition served 96 or 256
    assert counts.total() - items == sum((counts - expected).values())


def test_validation_items_are_served_once_padding_only_to_equal_ranks():
    data = dataset(UNEVEN, "val", window=50, stride=40)
    items = sum((c["num_frames"] - 50) // 40 + 1 for c in UNEVEN["clips"].values())
    parts = served(data, world_size=8, num_workers=4)
    keys = Counter((cid, start) for part in parts for _, cid, start, _ in part)
    assert len(keys) == items == 1417 and keys.total() == math.ceil(items / 8) * 8 == 1424  # 7 repeated windows
    assert len({tuple(len(part) for part in parts[r * 4 : r * 4 + 4]) for r in range(8)}) == 1  # ranks alike
    single = served(data, world_size=1, num_workers=4)
    assert sum(len(part) for part in single) == items  # one process repeats nothing


def test_training_windows_and_pairs_grow_with_clip_length():
    index = synthetic_index([4], frames=[750, 50, 100, 3975].__getitem__)
    windows = Counter(cid for _, cid, _, _ in dataset(index, window=50).epoch_items())
    assert list(windows.values()) == [14, 1, 1, 78]  # 30 s, 2 s, 4 s, 159 s at window 50: 14× the 2-s clip
    assert [item[1] for item in dataset(index, window=48).epoch_items()].count("c00002") == 1  # tiny pose configs
    pairs = Counter(cid for _, cid, _, _ in dataset(index, mode="stage2", pairs_per_clip=8).epoch_items())
    assert list(pairs.values()) == [30, 8, 8, 159]  # one per 25 frames, at least pairs_per_clip (8: the demo's)
    fixed = Counter(cid for _, cid, _, _ in dataset(index, mode="stage2", frames_per_pair=None).epoch_items())
    assert list(fixed.values()) == [1, 1, 1, 1]


def test_plan_summary_of_an_hdtf_sized_index_on_eight_gpus(tmp_path):
    """362 clips of 159 s (16.0 h), one identity each, split 290/36/36; the paper configs' data settings."""
    write_json_atomic(tmp_path / "index.json", synthetic_index([64] * 5 + [42], lambda i: 3975, "h", True))
    plans = {
        name: TalkingHeadDataModule(str(tmp_path), num_workers=4, **settings).plan_summary(world_size=8)
        for name, settings in {
            "facial_motion": {"window": 100, "batch_size": 16},
            "pose_vqvae": {"window": 128, "batch_size": 32},
            "pose_mapper": {"window": 128, "batch_size": 16},
            "motion_vae": {"mode": "stage2", "batch_size": 16, "pairs_per_clip": 4, "stride": 25},
        }.items()
    }
    summary = {name: (plan.items, plan.served, plan.batches_per_rank) for name, plan in plans.items()}
    assert summary == {
        "facial_motion": (290 * 38, 11040, 88),
        "pose_vqvae": (290 * 30, 8704, 36),
        "pose_mapper": (290 * 30, 8704, 68),
        "motion_vae": (290 * 159, 46112, 364),
    }
    assert "11020 items per epoch" in str(plans["facial_motion"])
    val = TalkingHeadDataModule(str(tmp_path), window=100, batch_size=16, num_workers=4).plan_summary(8, "val")
    assert (val.items, val.served) == (36 * 39, 1408)  # 4 windows counted twice in a metric over 1404


def test_corpus_weights_set_each_corpus_share_of_an_epoch():
    hdtf = synthetic_index([8] * 5, frames=lambda i: 100, prefix="h")  # 40 windows
    vox = synthetic_index([10] * 9, frames=lambda i: 60, prefix="v")  # 90 windows
    counts = {}
    for epoch in (0, 1):
        for weights in ([1.0, 0.5], [2.0, 0.25]):
            data = dataset([hdtf, vox], window=50, weights=weights)
            data.epoch = epoch
            parts = served(data, world_size=2, num_workers=2)
            drawn = Counter(cid[0] for _, cid, _, _ in data.epoch_items())
            assert drawn == {"h": round(40 * weights[0]), "v": round(90 * weights[1])}
            assert sum(map(len, parts)) == math.ceil(drawn.total() / 4) * 4
            counts[epoch, weights[1]] = Counter(cid for part in parts for _, cid, _, _ in part)
    assert all(counts[0, 0.5][f"h{i:05d}"] >= 1 for i in range(40))  # weight 1: every clip
    assert all(counts[0, 0.25][f"h{i:05d}"] >= 2 for i in range(40))  # weight 2: every clip twice
    assert {cid for cid in counts[0, 0.5] if cid[0] == "v"} != {cid for cid in counts[1, 0.5] if cid[0] == "v"}
    val = Counter(cid[0] for _, cid, _, _ in dataset([hdtf, vox], "val", window=50, weights=[1.0, 0.5]).epoch_items())
    assert val == {"h": 80, "v": 90}  # val/test: every window of every corpus once


def test_two_corpora_on_disk_with_weights_through_the_data_module(tmp_path):
    for name, count in (("a", 10), ("b", 20)):
        write_corpus(tmp_path / name, [make_clip(f"{name}{i:02d}", f"{name}{i}", num_frames=10) for i in range(count)])
    roots = [str(tmp_path / "a"), str(tmp_path / "b")]
    data = TalkingHeadDataModule(roots, window=4, batch_size=64, root_weights=[2.0, 0.5])
    data.setup("fit")
    clip_ids = [cid for batch in data.train_dataloader() for cid in batch["clip_id"]]
    assert Counter(cid[0] for cid in clip_ids) == {"a": 2 * 8, "b": 8}  # train: 8 of 10 and 16 of 20 identities
    assert data.root == tmp_path / "a" and data.plan_summary().items == 24


def test_order_is_a_function_of_seed_and_epoch_for_every_worker(tmp_path):
    write_corpus(tmp_path, [make_clip(f"c{i:02d}", f"id{i}", num_frames=12, seed=i) for i in range(20)])

    def epoch_order(epoch: int) -> list:
        data = TalkingHeadDataModule(str(tmp_path), window=4, batch_size=3, num_workers=2, verify_checksums=False)
        data.trainer = SimpleNamespace(current_epoch=epoch, global_rank=0, world_size=1)  # as after a resume
        return [
            (cid, int(start))
            for b in data.train_dataloader()
            for cid, start in zip(b["clip_id"], b["start"], strict=True)
        ]

    assert epoch_order(3) == epoch_order(3) != epoch_order(4)
    assert len(epoch_order(3)) == 16 * 2  # 12-frame clips: two windows of 4 each


def test_a_second_fit_reads_the_verified_record_instead_of_hashing(tmp_path, monkeypatch):
    from talkinghead.data import shards

    write_corpus(tmp_path, [make_clip(f"c{i}", f"id{i}", num_frames=6, size=16) for i in range(4)])
    hashed = []
    monkeypatch.setattr(shards, "file_sha256", lambda path, real=shards.file_sha256: hashed.append(path) or real(path))

    def fit_setup(rank: int) -> None:
        data = TalkingHeadDataModule(str(tmp_path), window=4)
        data.trainer = SimpleNamespace(current_epoch=0, global_rank=rank, world_size=2)
        data.setup("fit")

    fit_setup(rank=1)  # not rank 0: checks every shard and writes no record
    assert len(hashed) == 2 and not (tmp_path / ".verified.json").exists()
    fit_setup(rank=0)
    fit_setup(rank=1)
    fit_setup(rank=0)
    assert len(hashed) == 4  # only the first rank-0 fit hashed again


@pytest.mark.parametrize("mode", ["stage1", "stage2"])
def test_a_split_without_usable_clips_is_one_clear_error(mode):
    short = synthetic_index([3], frames=lambda i: 1 + 10 * i)
    for clip in short["clips"].values():
        clip["has_frames"] = mode == "stage1"
    message = "'train' of corpus0: no clip .*longest clip: 21 frames; 3 clips in the split"
    with pytest.raises(EmptySplitError, match=message):
        dataset(short, mode=mode, window=30).check_usable()
    empty = short | {"splits": {"train": short["splits"]["train"], "val": [], "test": []}}
    dataset(empty, "val").check_usable(allow_empty=True)
    with pytest.raises(EmptySplitError, match="split 'test' of corpus0 is empty"):
        dataset(empty, "test").check_usable()


@pytest.mark.parametrize("corpora", [1, 2])
def test_cli_fit_on_clips_shorter_than_the_window_exits_2_with_one_line(tmp_path, capsys, corpora):
    roots = [tmp_path / f"corpus{n}" for n in range(corpora)]
    for root in roots:
        write_corpus(root, [make_clip(f"c{i}", f"id{i}", num_frames=10) for i in range(3)])
    root = str(roots[0]) if corpora == 1 else f"[{', '.join(map(str, roots))}]"  # data.root: a folder or a list
    argv = [
        "fit", "--config", str(ROOT / "lightning_configs" / "facial_motion_tiny.yaml"),
        "--config", str(CSV_LOGGER_CONFIG), "--data.root", root,
        "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
    ]  # fmt: skip
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"talkinghead: error: split 'train' of {', '.join(map(str, roots))}: no clip is long enough for window 50 "
        f"(longest clip: 10 frames; {corpora} clip{'s' if corpora > 1 else ''} in the split)"
    )
