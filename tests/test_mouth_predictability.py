"""The mouth-predictability yardstick: ridge fits with known answers, level-free features, and the tool's table.

The tool's test replaces MediaPipe's video analysis with tracks built in the test (the mouth opening of each clip
is a known function of its speech), so the numbers it prints have known signs and sizes.
"""

import types

import numpy as np
import pytest
import soundfile

from talkinghead.conventions import FPS, SAMPLE_RATE
from talkinghead.evaluation.video_metrics import FaceTrack
from talkinghead.media import VideoWriter
from talkinghead.metrics.mouth_predictability import (
    CONTEXT,
    N_MELS,
    context_stack,
    held_out_r,
    mouth_predictability,
    speech_features,
)
from tests.helpers import load_tool

HOP = SAMPLE_RATE // int(FPS)


def test_context_stack_repeats_the_edge_rows():
    rows = np.arange(5.0)[:, None]
    stacked = context_stack(rows, (2, 1))
    np.testing.assert_array_equal(stacked[0], [0, 0, 0, 1])
    np.testing.assert_array_equal(stacked[2], [0, 1, 2, 3])
    np.testing.assert_array_equal(stacked[4], [2, 3, 4, 4])


def test_ridge_recovers_a_known_correlation_on_unseen_rows():
    """y = X·w + noise with var(X·w) = 1 and var(noise) = 0.5625: the best linear r is 1 / √1.5625 = 0.8."""
    rng = np.random.default_rng(0)
    features = rng.standard_normal((4000, 12))
    weights = rng.standard_normal(12)
    weights /= np.linalg.norm(weights)
    target = features @ weights + 0.75 * rng.standard_normal(4000)
    r = held_out_r(features[2000:], target[2000:], (features[:2000], target[:2000]))
    assert r == pytest.approx(0.8, abs=0.03)
    unrelated = rng.standard_normal(4000)
    assert abs(held_out_r(features[2000:], unrelated[2000:], (features[:2000], unrelated[:2000]))) < 0.1


def test_other_speakers_fit_never_sees_the_clips_own_identity():
    """Speaker a opens with the signal, speaker b closes with it: a's clips predicted from b alone anti-correlate."""
    rng = np.random.default_rng(1)
    weights = rng.standard_normal(6)
    clips, identities = {}, {}
    for name, sign in (("a1", 1.0), ("a2", 1.0), ("b1", -1.0)):
        features = rng.standard_normal((500, 6))
        clips[name] = (features, sign * features @ weights + 0.1 * rng.standard_normal(500))
        identities[name] = name[0]
    results = mouth_predictability(clips, identities)
    assert sorted(results) == ["a1", "a2", "b1"]
    for result in results.values():
        assert result.frames == 500
        assert result.same_speaker > 0.95
        assert result.other_speakers < -0.9  # with a's other clip in the fit it would be > 0.9
    alone = mouth_predictability({"a1": clips["a1"]}, {"a1": "a"})["a1"]
    assert np.isnan(alone.other_speakers) and alone.same_speaker > 0.95


def test_speech_features_are_standardised_and_level_free():
    rng = np.random.default_rng(2)
    frames = 60
    envelope = np.repeat(0.05 + rng.random(frames), HOP)
    speech = (rng.standard_normal(frames * HOP) * envelope).astype(np.float32)
    features = speech_features(speech, frames)
    assert features.shape == (frames, (CONTEXT[0] + 1 + CONTEXT[1]) * N_MELS)
    centre = features[:, CONTEXT[0] * N_MELS : (CONTEXT[0] + 1) * N_MELS]
    np.testing.assert_allclose(centre.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(centre.std(axis=0), 1.0, atol=1e-6)
    np.testing.assert_allclose(speech_features(0.1 * speech, frames), features, atol=1e-3)


def speaking_clip(folder, name, sign, rng, frames=250):
    """A video-only mp4, its sidecar speech (noise under a random syllable-rate envelope) and the face track whose
    inner-lip opening is ``0.05 + sign · 0.04 · envelope``."""
    envelope = np.convolve(rng.random(frames), np.ones(3) / 3, mode="same")
    speech = rng.standard_normal(frames * HOP) * np.repeat(0.02 + 0.3 * envelope, HOP)
    video = folder / f"{name}.mp4"
    with VideoWriter(video, FPS) as writer:
        writer.write(np.zeros((2, 64, 64, 3), dtype=np.uint8))
    soundfile.write(folder / f"{name}.wav", speech.astype(np.float32), SAMPLE_RATE)
    opening = 0.05 + sign * 0.04 * envelope
    landmarks = np.zeros((frames, 468, 3), dtype=np.float32)
    landmarks[:, 10, 1], landmarks[:, 152, 1] = 0.0, 100.0
    landmarks[:, 13, 1], landmarks[:, 14, 1] = 50.0 - 50.0 * opening, 50.0 + 50.0 * opening
    return FaceTrack(landmarks, np.ones(frames, dtype=bool), (64, 64))


def test_tool_prints_one_row_per_clip_and_writes_the_csv(tmp_path, monkeypatch, capsys):
    tool = load_tool("mouth_predictability")
    rng = np.random.default_rng(3)
    clips = tmp_path / "clips"
    clips.mkdir()
    tracks = {name: speaking_clip(clips, name, sign, rng) for name, sign in (("a_1", 1), ("a_2", 1), ("b_1", -1))}
    monkeypatch.setattr(tool, "analyse_video", lambda path: types.SimpleNamespace(track=tracks[path.stem]))
    assert tool.main(["--videos", str(clips), "--csv", str(tmp_path / "out.csv")]) == 0
    rows = (tmp_path / "out.csv").read_text().splitlines()
    assert rows[0] == ",".join(tool.COLUMNS) and len(rows) == 4
    values = {row.split(",")[0]: [float(v) for v in row.split(",")[2:]] for row in rows[1:]}
    assert sorted(values) == ["a_1.mp4", "a_2.mp4", "b_1.mp4"]
    for name, (frames, sync, same, other) in values.items():
        assert frames == 250
        assert same > 0.7  # the opening is a function of the speech level
        assert other < -0.5  # the other identity opens the other way
        assert (sync > 0.7) if name.startswith("a") else (sync < 0.3)
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| a_1.mp4", "| a_2.mp4", "| b_1.mp4", "| mean"]


def test_tool_refuses_a_single_identity_and_a_missing_source(tmp_path, monkeypatch, capsys):
    tool = load_tool("mouth_predictability")
    clips = tmp_path / "clips"
    clips.mkdir()
    track = speaking_clip(clips, "a_1", 1, np.random.default_rng(4))
    monkeypatch.setattr(tool, "analyse_video", lambda path: types.SimpleNamespace(track=track))
    assert tool.main(["--videos", str(clips)]) == 2
    assert capsys.readouterr().err == "error: --videos: at least two identities are needed for the other-speakers fit\n"
    assert tool.main(["--videos", str(tmp_path / "nowhere")]) == 2
    assert "neither a folder nor a file" in capsys.readouterr().err
    tracked = []
    monkeypatch.setattr(tool, "analyse_video", lambda path: tracked.append(path))
    assert tool.main(["--videos", str(clips), "--csv", str(tmp_path / "missing" / "table.csv")]) == 2
    assert capsys.readouterr().err == f"error: --csv: folder {str(tmp_path / 'missing')!r} does not exist\n"
    assert tool.main(["--videos", str(clips), "--csv", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: --csv: {tmp_path} is a folder\n"
    assert tracked == []  # both refused before any video was tracked
