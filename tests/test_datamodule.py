"""TalkingHeadDataModule: batch contracts, sample-exact audio spans, DDP/worker splitting, bad shards."""

import numpy as np
import pytest
import torch
from test_shards import SAMPLES_PER_FRAME, make_clip, write_corpus

from talkinghead.data.datamodule import ShardWindowDataset, TalkingHeadDataModule
from talkinghead.data.shards import CorruptShardError

WINDOW = 4


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """10 identities × 2 clips of 10 frames (64² frames), 2 clips per shard, plus one 3-frame clip."""
    root = tmp_path_factory.mktemp("corpus")
    clips = [make_clip(f"c{i:02d}", f"id{i // 2}", num_frames=10, seed=i) for i in range(20)]
    clips.append(make_clip("short", "id0", num_frames=3))
    index = write_corpus(root, clips, clips_per_shard=2)
    return root, index


def keys(items):
    return [(item["clip_id"], int(item["start"])) for item in items]


def test_stage1_batches_with_two_workers_have_the_documented_shapes(corpus):
    root, index = corpus
    data = TalkingHeadDataModule(str(root), window=WINDOW, batch_size=3, num_workers=2)
    batches = list(data.train_dataloader())
    train_clips = [cid for cid in index["splits"]["train"] if cid != "short"]
    assert sum(len(batch["clip_id"]) for batch in batches) == len(train_clips)
    batch = batches[0]
    size = len(batch["clip_id"])
    expected = {
        "audio": (size, WINDOW * SAMPLES_PER_FRAME),
        "alpha": (size, 8),
        "beta": (size, WINDOW, 52),
        "pose": (size, WINDOW, 6),
        "lip_offsets": (size, WINDOW, 5, 3),
        "landmarks": (size, WINDOW, 468, 2),
    }
    for name, shape in expected.items():
        assert batch[name].shape == shape and batch[name].dtype == torch.float32, name
    assert batch["start"].dtype == torch.int64 and len(batch["identity"]) == size


def test_stage1_yields_only_the_requested_fields(corpus):
    root, _ = corpus
    data = TalkingHeadDataModule(str(root), fields=["pose"], window=WINDOW, batch_size=2)
    batch = next(iter(data.val_dataloader()))
    assert set(batch) == {"pose", "clip_id", "identity", "start"}


def test_window_audio_and_motion_are_the_exact_span(corpus):
    root, _ = corpus
    for split in ("train", "val"):
        for item in ShardWindowDataset(root, split, window=WINDOW, stride=3):
            start = int(item["start"])
            samples = torch.arange(start * SAMPLES_PER_FRAME, (start + WINDOW) * SAMPLES_PER_FRAME)
            assert torch.equal((item["audio"].double() * 2**23).long(), samples)
            assert torch.equal(item["beta"][:, 0], torch.arange(start, start + WINDOW, dtype=torch.float32))
            assert torch.equal(item["landmarks"][:, 0, 0], item["beta"][:, 0])


def test_validation_windows_are_fixed_and_short_clips_skipped(corpus):
    root, index = corpus
    dataset = ShardWindowDataset(root, "train", window=WINDOW, stride=3, train=False)
    items = keys(dataset)
    clips = sorted(cid for cid in index["splits"]["train"] if cid != "short")
    assert sorted(items) == sorted((cid, start) for cid in clips for start in (0, 3, 6))
    assert items == keys(dataset)
    for bad in ({"stride": 0}, {"frames_per_pair": 0}):  # 0 is refused, not read as "unset"
        with pytest.raises(ValueError, match="window, stride, pairs_per_clip and frames_per_pair must be ≥ 1"):
            ShardWindowDataset(root, "train", window=WINDOW, train=False, **bad)


def test_the_test_loop_reads_every_clip_of_a_corpus_held_out_as_a_whole(corpus):
    root, index = corpus
    usable = sorted(cid for split in ("train", "val", "test") for cid in index["splits"][split] if cid != "short")
    data = TalkingHeadDataModule(str(root), fields=["beta"], window=WINDOW, stride=3, batch_size=4, test_split="all")
    data.setup("test")
    served = [
        (cid, int(start))
        for batch in data.test_dataloader()
        for cid, start in zip(batch["clip_id"], batch["start"], strict=True)
    ]
    assert len(usable) == 20 and sorted(served) == [(cid, start) for cid in usable for start in (0, 3, 6)]
    data = TalkingHeadDataModule(str(root), fields=["beta"], window=WINDOW, stride=3, batch_size=4)
    data.setup("test")
    assert {cid for batch in data.test_dataloader() for cid in batch["clip_id"]} == set(index["splits"]["test"]) - {
        "short"
    }
    with pytest.raises(ValueError, match="test_split must be one of"):
        TalkingHeadDataModule(str(root), test_split="everything")


def test_training_windows_change_with_the_epoch_and_repeat_for_the_same_epoch(corpus):
    root, _ = corpus
    dataset = ShardWindowDataset(root, "train", window=WINDOW)
    first = keys(dataset)
    assert first == keys(dataset)
    dataset.epoch = 1
    assert keys(dataset) != first


@pytest.mark.parametrize(("split", "num_workers"), [("train", 1), ("train", 2), ("val", 1), ("val", 2)])
def test_two_ranks_and_their_workers_see_disjoint_samples_covering_the_split(corpus, split, num_workers):
    root, _ = corpus
    seen = []
    for rank in (0, 1):
        dataset = ShardWindowDataset(root, split, window=WINDOW, stride=2, rank=rank, world_size=2)
        parts = [dataset.partition(rank, 2, worker, num_workers) for worker in range(num_workers)]
        assert len({len(part) for part in parts}) == 1
        if num_workers == 1:
            assert [(cid, start) for _, cid, start, _ in parts[0]] == [
                (item["clip_id"], -1 if split == "train" else int(item["start"])) for item in dataset
            ]
        seen.extend((cid, start) for part in parts for _, cid, start, _ in part)
    everything = [
        (cid, start)
        for _, cid, start, _ in ShardWindowDataset(
            root, split, window=WINDOW, stride=2, rank=0, world_size=1
        ).partition(0, 1, 0, 1)
    ]
    assert len(seen) == len(set(seen)) == len(everything)
    assert set(seen) == set(everything)


def batch_keys(loader) -> list[list[tuple]]:
    """(clip, window start or frame pair) of every item, batch by batch, of one pass of ``loader``."""

    def key(batch, i):
        if "start" in batch:
            return batch["clip_id"][i], int(batch["start"][i])
        return batch["clip_id"][i], int(batch["reference_index"][i]), int(batch["driven_index"][i])

    return [[key(batch, i) for i in range(len(batch["clip_id"]))] for batch in loader]


@pytest.mark.parametrize(("mode", "num_workers", "batch_size"), [("stage1", 0, 3), ("stage1", 3, 4), ("stage2", 2, 3)])
def test_a_pass_resumed_after_k_batches_serves_the_rest_of_the_uninterrupted_pass(
    corpus, mode, num_workers, batch_size
):
    """The training loader's state after k batches makes a new loader (another process, after a restore) serve
    batches k, k+1, … of the same epoch, random windows and pairs included, even with workers of unequal shares;
    the pass after it is the next epoch, whole."""
    root, _ = corpus
    settings = {"window": WINDOW, "mode": mode, "num_workers": num_workers, "batch_size": batch_size}
    uninterrupted = TalkingHeadDataModule(str(root), **settings).train_dataloader()
    passes = [batch_keys(uninterrupted), batch_keys(uninterrupted)]
    sizes = {len(batch) for batch in passes[0]}
    assert len(passes[0]) >= 4 and (num_workers < 3 or len(sizes) > 1)  # workers with unequal shares
    for k in (1, len(passes[0]) // 2, len(passes[0]) - 1):
        resumed = TalkingHeadDataModule(str(root), **settings).train_dataloader()
        resumed.load_state_dict({"epoch": 0, "batches": k})
        assert batch_keys(resumed) == passes[0][k:], k
        assert batch_keys(resumed) == passes[1]
    finished = TalkingHeadDataModule(str(root), **settings).train_dataloader()
    finished.load_state_dict({"epoch": 0, "batches": len(passes[0])})
    assert batch_keys(finished) == passes[1]


@pytest.mark.parametrize(("mode", "num_workers", "batch_size"), [("stage1", 0, 3), ("stage1", 3, 4), ("stage2", 2, 3)])
def test_a_loader_has_the_length_of_the_pass_it_serves_on_every_rank(corpus, mode, num_workers, batch_size):
    """The length Lightning reads (progress totals, ``estimated_stepping_batches``) is the number of batches a pass
    serves, for training (two epochs) and validation, on one rank and on each of two."""
    root, _ = corpus
    for world_size in (1, 2):
        for rank in range(world_size):
            data = TalkingHeadDataModule(
                str(root), window=WINDOW, mode=mode, num_workers=num_workers, batch_size=batch_size
            )
            data.setup()
            for dataset in data.datasets.values():
                dataset.rank, dataset.world_size = rank, world_size
            train, val = data.train_dataloader(), data.val_dataloader()
            served = [len(list(train)), len(list(train)), len(list(val))]
            assert [len(train), len(train), len(val)] == served and min(served) >= 1, (world_size, rank)


@pytest.mark.parametrize("mode", ["stage1", "stage2"])
def test_one_loader_worker_serves_the_batches_of_the_main_process_bit_for_bit(corpus, mode):
    """``num_workers: 1`` only moves reading into another process: two epochs of training batches (random windows
    and pairs included) and the validation pass are equal, tensor for tensor, to those read in the main process."""
    root, _ = corpus

    def passes(num_workers: int) -> list[list[dict]]:
        data = TalkingHeadDataModule(str(root), window=WINDOW, batch_size=3, mode=mode, num_workers=num_workers)
        train = data.train_dataloader()
        return [list(train), list(train), list(data.val_dataloader())]

    main, worker = passes(0), passes(1)
    assert [len(batches) for batches in main] == [len(batches) for batches in worker]
    assert sum(len(batches) for batches in main) >= 8
    assert batch_keys(main[0]) != batch_keys(main[1])  # two different epochs were compared
    for main_batches, worker_batches in zip(main, worker, strict=True):
        for main_batch, worker_batch in zip(main_batches, worker_batches, strict=True):
            assert main_batch.keys() == worker_batch.keys()
            for name, value in main_batch.items():
                if isinstance(value, torch.Tensor):
                    assert torch.equal(value, worker_batch[name]), name
                else:
                    assert value == worker_batch[name], name


def test_stage2_pairs_with_two_workers_have_the_documented_shapes(corpus):
    root, _ = corpus
    data = TalkingHeadDataModule(str(root), mode="stage2", batch_size=4, num_workers=2, pairs_per_clip=2)
    batch = next(iter(data.train_dataloader()))
    for role in ("reference", "driven"):
        frame = batch[f"{role}_frame"]
        assert frame.shape == (4, 3, 64, 64) and frame.dtype == torch.float32
        assert 0.0 <= frame.min() and frame.max() <= 1.0
        assert batch[f"{role}_beta"].shape == (4, 52) and batch[f"{role}_pose"].shape == (4, 6)
        assert batch[f"{role}_lip_offsets"].shape == (4, 5, 3)
        assert batch[f"{role}_landmarks"].shape == (4, 468, 2)
    assert batch["alpha"].shape == (4, 8)
    assert torch.all(batch["reference_index"] != batch["driven_index"])
    assert torch.equal(batch["driven_beta"][:, 0], batch["driven_index"].float())


def test_stage2_validation_pairs_start_from_frame_zero(corpus):
    root, index = corpus
    pairs = [
        (item["clip_id"], int(item["reference_index"]), int(item["driven_index"]))
        for item in ShardWindowDataset(root, "val", mode="stage2", stride=4)
    ]
    assert sorted(pairs) == sorted((cid, 0, d) for cid in index["splits"]["val"] for d in (4, 8))
    reference = next(iter(ShardWindowDataset(root, "val", mode="stage2", stride=4)))["reference_frame"]
    expected = make_clip(pairs[0][0], "x", seed=int(pairs[0][0][1:])).frames[0]
    error = (reference.permute(1, 2, 0) * 255 - torch.from_numpy(expected).float()).abs()
    assert error.mean() < 2.0


def test_corrupt_shard_stops_setup_or_is_skipped(corpus, tmp_path):
    root, index = corpus
    for path in root.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    victim = index["shards"][0]["name"]
    (tmp_path / victim).write_bytes((tmp_path / victim).read_bytes()[:-600])
    with pytest.raises(CorruptShardError, match=victim):
        TalkingHeadDataModule(str(tmp_path), window=WINDOW).setup("fit")
    data = TalkingHeadDataModule(str(tmp_path), window=WINDOW, skip_bad=True, batch_size=64)
    with pytest.warns(UserWarning, match=victim):
        data.setup("fit")
    clip_ids = next(iter(data.train_dataloader()))["clip_id"]
    assert set(clip_ids).isdisjoint(index["shards"][0]["clip_ids"])
    assert np.all([cid in index["splits"]["train"] for cid in clip_ids])
