"""``tools/articulation_check.py`` end to end on the tiny random-weight checkpoints (``tiny_checkpoints``): what it
writes and counts, not the quality of the videos. The "real clip" is a video the same pipeline made of the
astronaut speaking a speech-like signal. Also the input errors of the demo tools ``make demo`` runs first
(``demo_inputs.py``, ``ncc_preview.py``)."""

import csv
from collections import Counter
from pathlib import Path

import pytest
import skimage.data
import soundfile as sf
import torch
from PIL import Image

from talkinghead.media import probe_video
from talkinghead.models.export import export_files
from talkinghead.pipeline import GenerationParams, TalkingHeadPipeline
from talkinghead.pipeline.pipeline import CHECKPOINTS
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
    # a rerun into the same folder with fewer inputs reports only its own videos
    (out / "notes.txt").write_text("mine")
    rerun = argv[:2] + argv[4:]  # no --clips
    rerun[rerun.index("--seeds") : rerun.index("--seeds") + 3] = ["--seeds", "1"]
    assert load_tool("articulation_check").main(rerun) == 0
    rows = list(csv.DictReader((out / "report.csv").open()))
    assert [(row["setting"], row["video"]) for row in rows] == [
        ("cross-identity", str(out / "cross" / "astronaut__speech_seed1.mp4"))
    ]
    assert sorted(path.name for path in out.iterdir()) == ["cross", "notes.txt", "report.csv", "speech", "summary.md"]
    assert [path.name for path in (out / "cross").iterdir()] == ["astronaut__speech_seed1.mp4"]
    assert "0 real clips, 0 same-identity and 1 unseen-portrait videos" in (out / "summary.md").read_text()


def test_a_missing_input_is_one_line_and_writes_nothing(tiny_checkpoints, tmp_path, capsys):
    out = tmp_path / "check"
    argv = ["--checkpoints", str(tiny_checkpoints), "--clips", str(tmp_path / "nowhere.mp4"), "--out", str(out)]
    assert load_tool("articulation_check").main(argv) == 2
    assert capsys.readouterr().err.strip() == f"error: {str(tmp_path / 'nowhere.mp4')!r}: no such file"
    assert not out.exists()


def test_a_portrait_without_a_face_ends_the_run_before_any_video_is_made(tiny_checkpoints, inputs, tmp_path, capsys):
    blank = tmp_path / "wall.png"
    Image.new("RGB", (256, 256), (128, 128, 128)).save(blank)
    out = tmp_path / "check"
    argv = [
        "--checkpoints", str(tiny_checkpoints), "--clips", str(inputs / "clip.mp4"),
        "--portraits", str(inputs / "astronaut.png"), str(blank), "--speech", str(inputs / "speech.wav"),
        "--seconds", "1.2", "--seeds", "0", "--out", str(out), "-q",
    ]  # fmt: skip
    assert load_tool("articulation_check").main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: image {str(blank)!r}: no face found"]
    assert not out.exists()


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ("nothing", "no inputs: give --clips, or --portraits with --speech"),
        ("portraits_only", "--portraits needs --speech (the recordings the portraits say)"),
        ("speech_only", "--speech needs --portraits (the faces that say the recordings)"),
        ("no_seconds", "--seconds must be more than 0, got 0"),
        (
            "input_in_out",
            "{speech!r}: inside a folder of --out this tool empties (real, portraits, same, cross, speech)",
        ),
    ],
)
def test_unusable_input_combinations_are_one_line_and_write_nothing(tiny_checkpoints, tmp_path, capsys, case, problem):
    out = tmp_path / "check"
    portrait, speech = tmp_path / "face.png", out / "speech" / "speech.wav"
    speech.parent.mkdir(parents=True)
    Image.fromarray(skimage.data.astronaut()).save(portrait)
    sf.write(speech, speech_like(0.5), 16000)
    argv = {
        "nothing": [],
        "portraits_only": ["--portraits", str(portrait)],
        "speech_only": ["--speech", str(speech)],
        "no_seconds": ["--portraits", str(portrait), "--speech", str(speech), "--seconds", "0"],
        "input_in_out": ["--portraits", str(portrait), "--speech", str(speech)],
    }[case]
    assert load_tool("articulation_check").main(["--checkpoints", str(tiny_checkpoints), *argv, "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == ["error: " + problem.format(speech=str(speech))]
    assert [path.relative_to(out) for path in out.rglob("*")] == [Path("speech"), Path("speech/speech.wav")]


def test_unusable_checkpoints_are_one_line_and_write_nothing(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    portrait, speech, out = tmp_path / "face.png", tmp_path / "speech.wav", tmp_path / "check"
    Image.fromarray(skimage.data.astronaut()).save(portrait)
    sf.write(speech, speech_like(0.5), 16000)
    argv = ["--checkpoints", str(tmp_path / "empty"), "--portraits", str(portrait), "--speech", str(speech)]
    assert load_tool("articulation_check").main([*argv, "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --checkpoints {str(tmp_path / 'empty')!r}: holds neither Lightning checkpoints "
        f"({', '.join(CHECKPOINTS.values())}) nor an export ({', '.join(export_files())})"
    ]
    assert not out.exists()


@pytest.mark.parametrize(
    ("text", "problem"), [("", "empty"), ("  ... ", "'  ... ' has nothing espeak-ng says (0.009 s of audio, peak 0)")]
)
def test_demo_inputs_without_speech_are_one_line_and_write_nothing(tmp_path, capsys, text, problem):
    out = tmp_path / "demo"
    assert load_tool("demo_inputs").main([str(out), "--text", text]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: --text: {problem}"]
    assert not out.exists()


def test_ncc_preview_nvdiffrast_without_cuda_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "ncc"
    assert load_tool("ncc_preview").main(["--backend", "nvdiffrast", "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --backend nvdiffrast: the nvdiffrast backend needs a CUDA device, got cpu; use backend='torch'"
    ]
    assert not out.exists()


def test_ncc_preview_unwritable_out_is_exit_code_2(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / "file" / "ncc"
    assert load_tool("ncc_preview").main(["--backend", "torch", "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: cannot write to {out}: Not a directory"]
