"""``tools/articulation_check.py`` end to end on the tiny random-weight checkpoints (``tiny_checkpoints``): what it
writes and counts, not the quality of the videos. The "real clip" is a video the same pipeline made of the
astronaut speaking a speech-like signal."""

import csv
from collections import Counter

import pytest
import skimage.data
import soundfile as sf
from PIL import Image

from talkinghead.media import probe_video
from talkinghead.pipeline import GenerationParams, TalkingHeadPipeline
from tests.helpers import load_tool, speech_like


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_checkpoints):
    folder = tmp_path_factory.mktemp("articulation_inputs")
    Image.fromarray(skimage.data.astronaut()).save(folder / "astronaut.png")
    sf.write(folder / "speech.wav", speech_like(2.0, seed=4), 16000)
    pipeline = TalkingHeadPipeline.from_checkpoints(tiny_checkpoints)
    pipeline.generate(
        folder / "astronaut.png", folder / "speech.wav", folder / "clip.mp4", GenerationParams(pose="still"), False
    )
    return folder


def test_every_video_is_reported_and_the_goals_are_counted_from_the_report(tiny_checkpoints, inputs, tmp_path):
    out = tmp_path / "check"
    argv = [
        "--checkpoints", str(tiny_checkpoints), "--clips", str(inputs / "clip.mp4"),
        "--portraits", str(inputs / "astronaut.png"), "--speech", str(inputs / "speech.wav"),
        "--seconds", "1.2", "--seeds", "0", "1", "--out", str(out), "-q",
    ]  # fmt: skip
    assert load_tool("articulation_check").main(argv) == 0
    rows = list(csv.DictReader((out / "report.csv").open()))
    assert Counter(row["setting"] for row in rows) == {"real": 1, "same-identity": 1, "cross-identity": 2}
    assert probe_video(out / "real" / "clip.mp4").num_frames == 30  # the first 1.2 s at 25 fps
    assert sorted(path.name for path in (out / "cross").iterdir()) == [
        "astronaut__speech_seed0.mp4",
        "astronaut__speech_seed1.mp4",
    ]
    summary = (out / "summary.md").read_text()
    assert "1 real clips, 1 same-identity and 2 unseen-portrait videos" in summary
    cross = [row for row in rows if row["setting"] == "cross-identity"]
    lip_sync = sum(float(row["lip_sync_r"]) >= 0.3 for row in cross)
    faces = sum(float(row["frames_without_face"]) == 0 for row in cross)
    assert f"| unseen portraits: lip-sync r ≥ 0.3 | {lip_sync} of 2 |" in summary
    assert f"| unseen portraits: a face in every frame | {faces} of 2 |" in summary
    (same,) = [row for row in rows if row["setting"] == "same-identity"]
    assert f"| same identity: mouth-opening r ≥ 0.5 | {int(float(same['mouth_r']) >= 0.5)} of 1 (" in summary


def test_a_missing_input_is_one_line_and_writes_nothing(tiny_checkpoints, tmp_path, capsys):
    out = tmp_path / "check"
    argv = ["--checkpoints", str(tiny_checkpoints), "--clips", str(tmp_path / "nowhere.mp4"), "--out", str(out)]
    assert load_tool("articulation_check").main(argv) == 2
    assert capsys.readouterr().err.strip() == f"error: {str(tmp_path / 'nowhere.mp4')!r}: no such file"
    assert not out.exists()
