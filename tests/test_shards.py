"""Clip encoding, shard writing/resume, identity split, corruption handling and the clip reader."""

import json
import os

import numpy as np
import pytest

from talkinghead.atomic import temporary_path
from talkinghead.data.clip import Clip, ClipValidationError, frame_key
from talkinghead.data.shards import (
    CorruptShardError,
    ShardReader,
    ShardWriter,
    iter_clips,
    load_index,
    split_identities,
    verify_shards,
    write_index,
)

SAMPLES_PER_FRAME = 640  # 16 kHz audio at 25 fps


def make_clip(
    clip_id: str, identity: str, num_frames: int = 10, size: int = 64, frames: bool = True, seed: int = 0
) -> Clip:
    """A small clip whose content encodes positions: audio[i] = i·2⁻²³, beta[t, 0] = t, landmarks[t] = t."""
    rng = np.random.default_rng(seed)
    samples = num_frames * SAMPLES_PER_FRAME
    beta = rng.random((num_frames, 52), dtype=np.float32)
    beta[:, 0] = np.arange(num_frames)
    y, x = np.mgrid[0:size, 0:size]
    images = None
    if frames:
        images = np.stack(
            [np.stack([(x * 3 + t * 5) % 256, (y * 2 + t) % 256, (x + y) % 256], axis=-1) for t in range(num_frames)]
        ).astype(np.uint8)
    return Clip(
        meta={
            "clip_id": clip_id,
            "identity_id": identity,
            "source": "test",
            "fps": 25,
            "num_frames": num_frames,
            "sample_rate": 16000,
            "crop_box": [0, 0, size, size],
            "fit_residual": 0.5,
            "camera": {"image_size": size, "focal": 500.0, "distance": 60.0},
        },
        audio=np.arange(samples, dtype=np.float64) / 2**23,
        alpha=rng.standard_normal(8).astype(np.float32),
        beta=beta,
        pose=rng.standard_normal((num_frames, 6)).astype(np.float32),
        lip_offsets=rng.standard_normal((num_frames, 5, 3)).astype(np.float32),
        landmarks=np.broadcast_to(np.arange(num_frames, dtype=np.float32)[:, None, None], (num_frames, 468, 2)),
        frames=images,
    )


def write_corpus(out_dir, clips, clips_per_shard=2):
    with ShardWriter(out_dir, [clip.clip_id for clip in clips], clips_per_shard=clips_per_shard) as writer:
        for clip in clips:
            writer.put(clip.clip_id, clip)
    return write_index(out_dir)


def test_clip_round_trip_is_exact_for_audio_and_motion_and_close_for_frames():
    clip = make_clip("c0", "id0", seed=3)
    sample = clip.to_sample()
    assert sample == clip.to_sample()  # deterministic bytes
    decoded = Clip.from_sample(sample)
    assert decoded.meta == clip.meta
    for name in ("audio", "alpha", "beta", "pose", "lip_offsets", "landmarks"):
        np.testing.assert_array_equal(getattr(decoded, name), getattr(clip, name))
        assert getattr(decoded, name).dtype == np.float32
    error = np.abs(decoded.frames.astype(int) - clip.frames)
    assert decoded.frames.shape == clip.frames.shape and decoded.frames.dtype == np.uint8
    assert error.mean() < 2.0 and error.max() <= 40  # JPEG q95 4:4:4


def test_clip_from_sample_decodes_only_requested_fields():
    decoded = Clip.from_sample(make_clip("c0", "id0").to_sample(), fields=["beta"])
    assert decoded.beta is not None
    assert decoded.audio is None and decoded.frames is None and decoded.landmarks is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"audio": np.zeros(10 * 640 + 700)}, "audio has"),
        ({"pose": np.zeros((9, 6))}, "pose has shape"),
        ({"frames": np.zeros((10, 8, 8, 3), np.float32)}, "frames must be uint8"),
        ({"meta_clip_id": "a.b"}, "clip_id"),
        ({"meta_sample_rate": 44100}, "sample_rate"),
    ],
)
def test_clip_validation_names_the_problem(change, message):
    clip = make_clip("c0", "id0")
    arrays = {
        name: getattr(clip, name) for name in ("audio", "alpha", "beta", "pose", "lip_offsets", "landmarks", "frames")
    }
    meta = dict(clip.meta)
    for key, value in change.items():
        if key.startswith("meta_"):
            meta[key[5:]] = value
        else:
            arrays[key] = value
    with pytest.raises(ClipValidationError, match=message):
        Clip(meta=meta, **arrays)


@pytest.mark.parametrize("count", [1, 2, 3, 7, 10, 40])
def test_split_identities_is_deterministic_and_guarantees_val_and_test(count):
    identities = [f"id{i}" for i in range(count)]
    split = split_identities(identities, seed=5)
    assert split == split_identities(reversed(identities), seed=5)
    sizes = {name: sum(value == name for value in split.values()) for name in ("train", "val", "test")}
    expected = {1: (1, 0, 0), 2: (1, 1, 0), 3: (1, 1, 1), 7: (5, 1, 1), 10: (8, 1, 1), 40: (32, 4, 4)}[count]
    assert (sizes["train"], sizes["val"], sizes["test"]) == expected


def test_index_splits_are_disjoint_by_identity(tmp_path):
    clips = [make_clip(f"c{i:02d}", f"id{i % 6}", num_frames=3, size=16, seed=i) for i in range(18)]
    index = write_corpus(tmp_path, clips, clips_per_shard=4)
    owners = {clip.clip_id: clip.identity_id for clip in clips}
    seen = {split: {owners[cid] for cid in index["splits"][split]} for split in ("train", "val", "test")}
    assert seen["train"].isdisjoint(seen["val"]) and seen["train"].isdisjoint(seen["test"])
    assert seen["val"].isdisjoint(seen["test"])
    assert sorted(sum(index["splits"].values(), [])) == sorted(owners)
    assert all(seen[split] for split in seen)
    assert [shard["num_samples"] for shard in index["shards"]] == [4, 4, 4, 4, 2]
    assert load_index(tmp_path) == json.loads((tmp_path / "index.json").read_text())


def test_resume_skips_finished_shards_and_reproduces_them_byte_for_byte(tmp_path):
    clips = [make_clip(f"c{i}", f"id{i}", num_frames=4, size=16, seed=i) for i in range(7)]
    ids = [clip.clip_id for clip in clips]
    write_corpus(tmp_path / "clean", clips, clips_per_shard=3)

    interrupted = tmp_path / "resumed"
    with pytest.warns(UserWarning, match="never put"):
        with ShardWriter(interrupted, ids, clips_per_shard=3) as writer:
            for clip in clips[:4]:  # the run dies after the first shard and one clip of the second
                writer.put(clip.clip_id, clip)
    temporary_path(interrupted / "shard-000001.tar").write_bytes(b"partial")  # what a crash mid-write leaves
    first = interrupted / "shard-000000.tar"
    stamp = first.stat().st_mtime_ns

    writer = ShardWriter(interrupted, ids, clips_per_shard=3)
    assert writer.todo == ids[3:]
    assert writer.is_done("c0") and not writer.is_done("c3")
    with writer:
        for clip_id in writer.todo:
            writer.put(clip_id, clips[ids.index(clip_id)])
    assert writer.written == ["shard-000001.tar", "shard-000002.tar"]
    assert first.stat().st_mtime_ns == stamp
    write_index(interrupted)
    for name in ("shard-000000.tar", "shard-000001.tar", "shard-000002.tar", "index.json"):
        assert (interrupted / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()
    assert not list(interrupted.glob(".*.part"))


@pytest.mark.filterwarnings("ignore:.*is empty")
def test_rejected_inputs_are_left_out_of_the_shard(tmp_path):
    clips = [make_clip(f"c{i}", f"id{i}", num_frames=3, size=16) for i in range(3)]
    with ShardWriter(tmp_path, [clip.clip_id for clip in clips], clips_per_shard=3) as writer:
        writer.put("c1", None)
        writer.put("c0", clips[0])
        writer.put("c2", clips[2])
    index = write_index(tmp_path)
    assert index["shards"][0]["clip_ids"] == ["c0", "c2"]


@pytest.fixture
def corrupted_corpus(tmp_path):
    clips = [make_clip(f"c{i}", f"id{i}", num_frames=3, size=16, seed=i) for i in range(6)]
    write_corpus(tmp_path, clips, clips_per_shard=2)
    path = tmp_path / "shard-000001.tar"
    path.write_bytes(path.read_bytes()[:1500])
    return tmp_path


def test_truncated_shard_is_refused_by_name(corrupted_corpus):
    with pytest.raises(CorruptShardError, match="shard-000001.tar") as caught:
        verify_shards(corrupted_corpus)
    assert caught.value.shard == "shard-000001.tar"
    with pytest.raises(CorruptShardError, match="shard-000001.tar"):
        list(iter_clips(corrupted_corpus, fields=["beta"]))


def test_a_reopened_shard_reuses_its_member_table_until_the_file_changes(tmp_path):
    """The second reader of an unchanged shard walks no header (one table, shared); a shard rewritten with other
    clips, or truncated, under the same name is walked again: new clip ids, or the truncation refused by name."""
    write_corpus(tmp_path, [make_clip(f"c{i}", f"id{i}", num_frames=3, size=16, seed=i) for i in range(2)])
    path = tmp_path / "shard-000000.tar"
    opened = [ShardReader(path) for _ in range(3)]
    assert [reader.clip_ids for reader in opened] == [["c0", "c1"]] * 3
    assert opened[0]._members is opened[2]._members
    assert np.array_equal(opened[2].load_clip("c1", ["beta"]).beta, make_clip("c1", "id1", 3, 16, seed=1).beta)
    for reader in opened:
        reader.close()
    rewritten = tmp_path / "rewritten"
    write_corpus(rewritten, [make_clip(f"d{i}", f"id{i}", num_frames=4, size=16, seed=i) for i in range(2)])
    os.replace(rewritten / "shard-000000.tar", path)
    with ShardReader(path) as reader:
        assert reader.clip_ids == ["d0", "d1"]
    path.write_bytes(path.read_bytes()[:1500])
    with pytest.raises(CorruptShardError, match="shard-000000.tar.*truncated"):
        ShardReader(path)


def test_truncated_shard_is_skipped_with_a_warning(corrupted_corpus):
    with pytest.warns(UserWarning, match="shard-000001.tar"):
        good = verify_shards(corrupted_corpus, skip_bad=True)
    assert [entry["name"] for entry in good] == ["shard-000000.tar", "shard-000002.tar"]
    with pytest.warns(UserWarning, match="shard-000001.tar"):
        ids = [clip.clip_id for clip in iter_clips(corrupted_corpus, fields=["beta"], skip_bad=True)]
    assert ids == ["c0", "c1", "c4", "c5"]


@pytest.mark.filterwarnings("ignore:.*is empty")
def test_flipped_bytes_fail_the_checksum(tmp_path):
    write_corpus(tmp_path, [make_clip("c0", "id0", num_frames=3, size=16)])
    path = tmp_path / "shard-000000.tar"
    data = bytearray(path.read_bytes())
    data[2000] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptShardError, match="shard-000000.tar: sha256"):
        verify_shards(tmp_path)


def test_iter_clips_reads_a_split_with_only_the_requested_fields(tmp_path):
    clips = [make_clip(f"c{i}", f"id{i % 3}", num_frames=3, size=16, seed=i) for i in range(6)]
    index = write_corpus(tmp_path, clips)
    loaded = list(iter_clips(tmp_path, "val", fields=["audio", "frames"]))
    assert [clip.clip_id for clip in loaded] == index["splits"]["val"]
    for clip in loaded:
        assert clip.beta is None and clip.audio is not None and clip.frames.shape == (3, 16, 16, 3)
    assert frame_key(12) == "frames.000012.jpg"


def _counting_sha256(monkeypatch) -> list:
    """Patch the shard hash function to record the shards it hashes; return the record."""
    from talkinghead.data import shards

    hashed = []
    real = shards.file_sha256

    def counted(path):
        hashed.append(path.name)
        return real(path)

    monkeypatch.setattr(shards, "file_sha256", counted)
    return hashed


def test_verified_shards_are_hashed_once_and_a_changed_one_again(tmp_path, monkeypatch):
    clips = [make_clip(f"c{i}", f"id{i}", num_frames=3, size=16, seed=i) for i in range(6)]
    write_corpus(tmp_path, clips, clips_per_shard=2)
    hashed = _counting_sha256(monkeypatch)
    verify_shards(tmp_path, cache="read")  # a rank other than 0: checks, records nothing
    assert len(hashed) == 3 and not (tmp_path / ".verified.json").exists()
    verify_shards(tmp_path, cache="write")
    assert len(hashed) == 6 and (tmp_path / ".verified.json").exists()
    good = verify_shards(tmp_path, cache="read")
    assert len(hashed) == 6 and len(good) == 3  # the second verification hashes nothing
    verify_shards(tmp_path)  # an explicit check without the cache reads everything
    assert len(hashed) == 9

    victim = tmp_path / "shard-000001.tar"
    data = bytearray(victim.read_bytes())
    data[2000] ^= 0xFF  # same size; the write and utime give a new mtime
    victim.write_bytes(bytes(data))
    stat = victim.stat()
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    with pytest.raises(CorruptShardError, match="shard-000001.tar: sha256"):
        verify_shards(tmp_path, cache="write")
    assert hashed[9:] == ["shard-000001.tar"]
    with pytest.warns(UserWarning, match="shard-000001.tar"):
        good = verify_shards(tmp_path, skip_bad=True, cache="write")
    assert [entry["name"] for entry in good] == ["shard-000000.tar", "shard-000002.tar"]
    assert sorted(json.loads((tmp_path / ".verified.json").read_text())["shards"]) == [e["name"] for e in good]


def test_a_rewritten_index_invalidates_the_verified_record(tmp_path, monkeypatch):
    write_corpus(tmp_path, [make_clip(f"c{i}", f"id{i}", num_frames=3, size=16) for i in range(4)])
    verify_shards(tmp_path, cache="write")
    hashed = _counting_sha256(monkeypatch)
    write_index(tmp_path, seed=1)  # another split: another index sha256
    verify_shards(tmp_path, cache="write")
    verify_shards(tmp_path, cache="read")
    assert len(hashed) == 2
