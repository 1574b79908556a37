"""The embedded corpus: deterministic from the seed, ground truth consistent with its frames, CLI round trip."""

import json
import shutil

import numpy as np
import pytest
import torch

from talkinghead.data.cli import main as data_main
from talkinghead.data.datamodule import EmptySplitError, ShardWindowDataset
from talkinghead.data.shards import iter_clips, load_index
from talkinghead.data.synthetic.synth import SynthConfig, make_clip
from talkinghead.face import PerspectiveCamera, apply_pose, builtin_morphable_model
from tests.helpers import TINY_CORPUS_ARGS

CONFIG = SynthConfig(clips=6, seconds=1.0, seed=3, clips_per_shard=2)


def test_same_seed_gives_identical_clips():
    first, second = make_clip(CONFIG, 1), make_clip(CONFIG, 1)
    for name in ("audio", "alpha", "beta", "pose", "lip_offsets", "landmarks", "frames"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name), err_msg=name)
    assert first.meta == second.meta
    other = make_clip(SynthConfig(clips=6, seconds=1.0, seed=4), 1)
    assert not np.array_equal(first.beta, other.beta)


def test_stored_landmarks_are_the_projected_ground_truth_mesh():
    """Landmarks re-drawn from the stored α, β, O_lip and pose project within 1 px of the stored ones."""
    clip = make_clip(CONFIG, 0)
    model, camera = builtin_morphable_model(), PerspectiveCamera(**clip.meta["camera"])
    vertices = model.vertices(
        torch.from_numpy(clip.alpha), torch.from_numpy(clip.beta), torch.from_numpy(clip.lip_offsets)
    )
    projected = camera.project(apply_pose(vertices, torch.from_numpy(clip.pose)))[..., :2].numpy()
    assert np.abs(projected - clip.landmarks).max() < 1.0
    assert clip.frames.shape == (25, 256, 256, 3) and clip.audio.shape == (16000,)
    assert clip.beta.min() >= 0 and clip.beta.max() <= 1
    assert clip.meta["phonemes"], "the clip carries espeak-ng's phoneme timings"


def test_cli_builds_shards_with_identity_split_and_inspects(tiny_corpus, capsys):
    corpus = tiny_corpus
    index = load_index(corpus)
    assert len(index["clips"]) == 6 and len(index["identities"]) == 3
    assert all(len(index["splits"][split]) == 2 for split in ("train", "val", "test"))
    clips = list(iter_clips(corpus, split="val", fields=("beta",)))
    assert {clip.identity_id for clip in clips} == {index["clips"][clips[0].clip_id]["identity_id"]}
    assert data_main(["inspect", str(corpus)]) == 0
    out = capsys.readouterr().out
    assert "6 clips" in out and "frames" in out
    assert (corpus / "contact_sheet.png").stat().st_size > 10_000


def test_rerun_resumes_without_rewriting(tiny_corpus):
    corpus = tiny_corpus
    before = {path.name: path.stat().st_mtime_ns for path in corpus.glob("shard-*.tar")}
    assert data_main(["synth", "--out", str(corpus), *TINY_CORPUS_ARGS]) == 0
    assert {path.name: path.stat().st_mtime_ns for path in corpus.glob("shard-*.tar")} == before
    assert json.loads((corpus / "index.json").read_text())["clips"].keys() == load_index(corpus)["clips"].keys()


def test_corpus_without_frames_has_the_framed_corpus_speech_and_expression(tiny_corpus, tiny_speech_corpus):
    """``--no-frames`` keeps every draw: the same audio, α, β and O_lip as the framed corpus, the head pose moved
    by one constant per clip (the unvaried portrait's P_ref), no frame; stage 1 reads it, stage 2 finds no pair."""
    speech = tiny_speech_corpus
    assert load_index(speech)["splits"] == load_index(tiny_corpus)["splits"]
    framed = {clip.clip_id: clip for clip in iter_clips(tiny_corpus)}
    clips = list(iter_clips(speech))
    assert len(clips) == 6
    for clip in clips:
        assert clip.frames is None
        for name in ("audio", "alpha", "beta", "lip_offsets"):
            np.testing.assert_array_equal(getattr(clip, name), getattr(framed[clip.clip_id], name), err_msg=name)
        moved = clip.pose - framed[clip.clip_id].pose
        np.testing.assert_allclose(moved, np.broadcast_to(moved[0], moved.shape), atol=1e-5)
    windows = [item["clip_id"] for item in ShardWindowDataset(speech, "train", window=48, train=False)]
    assert sorted(windows) == sorted(load_index(speech)["splits"]["train"])
    with pytest.raises(EmptySplitError, match="train"):
        ShardWindowDataset(speech, "train", mode="stage2").check_usable()


def test_inspect_of_a_corpus_without_frames_draws_no_sheet(tiny_speech_corpus, tmp_path, capsys):
    assert data_main(["inspect", str(tiny_speech_corpus)]) == 0
    assert "6 clips" in capsys.readouterr().out and not (tiny_speech_corpus / "contact_sheet.png").exists()
    assert data_main(["inspect", str(tiny_speech_corpus), "--sheet", str(tmp_path / "sheet.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no clip with frames" in err and len(err.splitlines()) == 1 and not (tmp_path / "sheet.png").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["synth", "--out", "{tmp}/c", "--images", "{tmp}/missing.png"], "missing.png is not a file"),
        (["synth", "--out", "{tmp}/c", "--clips", "0"], "--clips must be"),
        (["inspect", "{tmp}/nothing"], "index.json not found"),
    ],
)
def test_cli_user_errors_are_one_line(tmp_path, capsys, argv, message):
    assert data_main([arg.format(tmp=tmp_path) for arg in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_rerun_with_other_settings_is_refused_and_more_clips_extend_the_corpus(tmp_path, capsys):
    out = tmp_path / "syn"
    same = ["synth", "--out", str(out), "--seconds", "1", "--no-frames", "--workers", "1"]
    assert data_main([*same, "--clips", "2"]) == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    capsys.readouterr()
    assert data_main(["synth", "--out", str(out), "--clips", "2", "--seconds", "3", "--seed", "7"]) == 2
    assert capsys.readouterr().err == (
        f"talkinghead-data synth: error: {out} was built with other settings: seconds 1.0 (now 3.0), seed 0 (now 7), "
        "frames False (now True); rerun with those or use another --out\n"
    )
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    assert data_main([*same, "--clips", "2"]) == 0  # the same settings resume: nothing is redone
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    first = next(iter_clips(out))
    assert data_main([*same, "--clips", "3"]) == 0
    index = load_index(out)
    assert sorted(index["clips"]) == ["synth-00000", "synth-00001", "synth-00002"]
    np.testing.assert_array_equal(next(iter_clips(out)).audio, first.audio)
    capsys.readouterr()
    assert data_main([*same, "--clips", "2"]) == 2  # fewer clips would leave the third in the index
    assert capsys.readouterr().err == (
        f"talkinghead-data synth: error: {out} holds 3 clips, more than --clips 2; use another --out\n"
    )
    capsys.readouterr()
    (out / "synth.json").write_text("[]")  # not settings
    assert data_main([*same, "--clips", "3"]) == 2
    assert capsys.readouterr().err == (
        f"talkinghead-data synth: error: {out} holds shards without a readable synth.json; use another --out\n"
    )
    (out / "synth.json").unlink()  # a corpus of an older version: these settings are recorded, with a warning
    assert data_main([*same, "--clips", "3"]) == 0
    assert "has no synth.json (built by an older version)" in capsys.readouterr().err
    assert data_main(["synth", "--out", str(out), "--clips", "3", "--seconds", "2", "--no-frames"]) == 2


def test_output_files_of_the_wrong_format_are_refused_before_any_work(tiny_corpus, tmp_path, capsys):
    clip, sheet = tmp_path / "clip.avi", tmp_path / "sheet.jpg"
    assert data_main(["export", str(tiny_corpus), "--clip", "synth-00000", "--out", str(clip)]) == 2
    assert data_main(["inspect", str(tiny_corpus), "--sheet", str(sheet)]) == 2
    assert capsys.readouterr() == (
        "",
        f"talkinghead-data export: error: --out: {clip} must end in .mp4, the format it is written in\n"
        f"talkinghead-data inspect: error: --sheet: {sheet} must end in .png, the format it is written in\n",
    )
    assert list(tmp_path.iterdir()) == []
    assert data_main(["export", str(tiny_corpus), "--clip", "synth-00000", "--out", str(tmp_path / "clip.MP4")]) == 0
    assert (tmp_path / "clip.MP4").stat().st_size > 10_000


def test_inspect_skipping_every_shard_as_corrupt_is_one_line(tiny_speech_corpus, tmp_path, capsys):
    """``inspect --skip-bad`` of a corpus whose every shard is corrupt: after the warning for each skipped shard, one
    line saying no clip is readable, exit 2 (it ended in a ``StopIteration`` traceback)."""
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_speech_corpus, corpus)
    shards = sorted(corpus.glob("shard-*.tar"))
    for shard in shards:
        shard.write_bytes(b"\0" * shard.stat().st_size)
    assert data_main(["inspect", str(corpus), "--skip-bad"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"talkinghead-data inspect: error: {corpus}: no readable clip (every shard is corrupt and was skipped)"
    )
