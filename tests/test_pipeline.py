"""TalkingHeadPipeline and ``talkinghead-generate`` end to end on tiny checkpoints.

The checkpoints are the session fixture ``tiny_checkpoints`` (conftest): the ``*_tiny.yaml`` model
arguments with random weights, no training. These tests check the pipeline's contracts — frame count,
audio stream, pose modes, seeds, full-frame paste-back, error handling — not the quality of the video
(docs/RESULTS.md measures that).
"""

from pathlib import Path

import numpy as np
import pytest
import skimage.data
import soundfile as sf
import torch
import yaml
from PIL import Image
from scipy.signal import lfilter

from talkinghead.audio.encoders import MelEncoder
from talkinghead.audio.spectrum import CORPUS_SPECTRUM_DB, equalizing_filter, long_term_spectrum_db
from talkinghead.media import iter_video_frames, probe_video
from talkinghead.pipeline import GenerationParams, TalkingHeadPipeline
from talkinghead.pipeline.cli import generation_params, parser
from talkinghead.pipeline.cli import main as generate_main
from talkinghead.pipeline.heard_speech import heard_speech
from talkinghead.pipeline.inputs import follow
from tests.helpers import save_checkpoint, speech_like, tiny_init_args

ROOT = Path(__file__).resolve().parents[1]
SECONDS = 1.6


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    Image.fromarray(skimage.data.astronaut()).save(folder / "portrait.png")
    time = np.arange(int(SECONDS * 16000)) / 16000
    speech = 0.3 * np.sin(2 * np.pi * 180 * time) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * time))
    sf.write(folder / "speech.wav", speech.astype(np.float32), 16000)
    sf.write(folder / "silent.wav", np.zeros(16000, np.float32), 16000)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    (folder / "notes.png").write_text("not an image")
    Image.fromarray(np.full((256, 256, 3), 128, np.uint8)).save(folder / "noface.png")
    Image.fromarray(skimage.data.astronaut()).resize((256, 256)).save(folder / "small.png")
    Image.fromarray(skimage.data.astronaut()).convert("L").save(folder / "gray.png")
    return {path.stem: path for path in folder.iterdir()}


@pytest.fixture(scope="module")
def pipeline(tiny_checkpoints) -> TalkingHeadPipeline:
    return TalkingHeadPipeline.from_checkpoints(tiny_checkpoints)


def _frames(path: Path) -> np.ndarray:
    return np.stack(list(iter_video_frames(path)))


def test_video_has_25_fps_frames_for_the_whole_speech_and_the_speech_itself(pipeline, inputs, tmp_path):
    out = tmp_path / "out.mp4"
    result = pipeline.generate(
        inputs["portrait"], inputs["speech"], out, GenerationParams(side_by_side=True), progress=False
    )
    info = probe_video(out)
    assert abs(info.num_frames - 25 * SECONDS) <= 1 and result.num_frames == info.num_frames
    assert info.fps == 25 and info.has_audio and (info.width, info.height) == (256, 256)
    side = probe_video(result.side_by_side)
    assert (side.width, side.height, side.num_frames) == (512, 256, info.num_frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "out_side_by_side.mp4"]


def test_still_pose_is_constant_and_pose_files_add_their_motion(pipeline, inputs, tmp_path):
    still = pipeline.generate(
        inputs["portrait"], inputs["speech"], tmp_path / "still.mp4", GenerationParams(pose="still"), progress=False
    )
    assert torch.equal(still.poses, still.poses[:1].expand_as(still.poses))
    motion = np.zeros((10, 6))
    motion[:, 1] = np.linspace(0.0, 0.2, 10)  # yaw sweep
    np.save(tmp_path / "yaw.npy", motion + 0.5)
    moved = pipeline.generate(
        inputs["portrait"],
        inputs["speech"],
        tmp_path / "moved.mp4",
        GenerationParams(pose=str(tmp_path / "yaw.npy")),
        progress=False,
    )
    expected = still.poses[:1] + follow(torch.from_numpy(motion).float(), moved.num_frames)
    assert torch.allclose(moved.poses, expected, atol=1e-6)


def test_same_seed_same_video_other_seed_other_head_motion(pipeline, inputs, tmp_path):
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        runs[name] = pipeline.generate(
            inputs["portrait"], inputs["speech"], tmp_path / f"{name}.mp4", GenerationParams(seed=seed), progress=False
        )
    assert torch.equal(runs["a"].poses, runs["b"].poses)
    assert np.array_equal(_frames(tmp_path / "a.mp4"), _frames(tmp_path / "b.mp4"))
    assert (runs["a"].poses - runs["c"].poses).abs().max() > 1e-3


def test_a_generated_pose_is_centred_on_the_portraits_pose_with_its_motion_kept(pipeline):
    """``centre_pose`` (the default) shifts the sampled trajectory by one constant: its mean over the video is the
    portrait's pose (to float rounding) and every frame-to-frame step is the sampled one; the facial motion is
    untouched. ``--keep-pose-offset`` turns it off."""
    speech = speech_like(3.0, seed=4)
    prepared = pipeline.prepare(skimage.data.astronaut())
    centred = pipeline.motion(prepared, speech, GenerationParams(seed=2))
    sampled = pipeline.motion(prepared, speech, GenerationParams(seed=2, centre_pose=False))
    reference = prepared.portrait.pose
    offset = sampled["pose"].mean(dim=0) - reference
    assert offset.abs().max() > 1e-3  # the random tiny mapper drifts too: there was an offset to remove
    torch.testing.assert_close(centred["pose"].mean(dim=0), reference, atol=1e-5, rtol=0)
    torch.testing.assert_close(centred["pose"], sampled["pose"] - offset, atol=1e-5, rtol=0)
    assert torch.equal(centred["beta"], sampled["beta"])
    argv = ["--image", "p.png", "--audio", "s.wav", "--out", "o.mp4"]
    assert generation_params(parser().parse_args(argv)).centre_pose
    assert not generation_params(parser().parse_args([*argv, "--keep-pose-offset"])).centre_pose


def test_the_recording_gain_does_not_reach_the_motion(pipeline):
    """With the speech-level control (the default) a recording 10 dB quieter drives the same stage-1 motion as
    the original from its second second on (β within 5 % of its spread over time; the estimate needs a few
    syllables), while without it the two recordings drive motions 10× further apart (measured 2.2 % and 16×
    with the random tiny networks)."""
    speech = speech_like(3.0, seed=1)
    prepared = pipeline.prepare(skimage.data.astronaut())

    def beta(audio, level):
        params = GenerationParams(pose="still", speech_level_db=level)
        return pipeline.motion(prepared, audio.astype(np.float32), params)["beta"][25:]

    quiet = speech * 10 ** (-10 / 20)
    controlled = (beta(speech, -21.0) - beta(quiet, -21.0)).abs().mean()
    raw = (beta(speech, None) - beta(quiet, None)).abs().mean()
    spread = beta(speech, -21.0).std(dim=0).mean()
    assert controlled < 0.05 * spread, (controlled, spread)
    assert raw > 10 * controlled, (raw, controlled)


def test_the_pause_attenuation_turns_a_noisy_recordings_pauses_down_in_what_stage_1_hears():
    """A recording with noise under it (−40 dBFS, 20-30 dB below its syllables): with ``pause_depth_db=20`` stage 1's
    log-mel features (``(log10 power + 4) / 4``, so 1 = 40 dB) of its pause frames are ≥ 15 dB lower than without
    (measured 18.5 dB), those of its speech frames < 3 dB lower (measured 2.0: the first frame of a syllable after a
    pause is still turned down). Features, not a motion: how far a feature moves a motion is the network's."""
    clean = speech_like(4.0, seed=2)
    noisy = clean + np.random.default_rng(0).standard_normal(len(clean)).astype(np.float32) * 0.01
    frame_rms = np.sqrt(np.mean(clean[: len(clean) // 640 * 640].reshape(-1, 640) ** 2, axis=1))
    pause, speech = torch.from_numpy(frame_rms < 0.005)[25:], torch.from_numpy(frame_rms > 0.02)[25:]
    encoder = MelEncoder()

    def features(depth):
        heard = heard_speech(noisy, GenerationParams(pose="still", pause_depth_db=depth))
        return encoder(torch.from_numpy(heard)[None], len(frame_rms))[0, 25:]

    lower_db = 40 * (features(0.0) - features(20.0))
    assert pause.sum() >= 10 and speech.sum() >= 30
    assert lower_db[pause].mean() >= 15, lower_db[pause].mean()
    assert lower_db[speech].mean() < 3, lower_db[speech].mean()


def test_the_recording_colour_does_not_reach_the_motion_when_equalized(pipeline):
    """With the speech equaliser on, a recording 12 dB darker in the 1–4 kHz octaves (a microphone's colour)
    drives nearly the stage-1 motion of the original from its second second on (β within 10 % of its spread over
    time; the equaliser's gains move 0.5 dB per frame), while without it the two drive motions several times
    further apart (measured 6.4 % and 5.6× with the random tiny networks)."""
    speech = speech_like(3.0, seed=1)
    corpus_coloured = equalizing_filter(np.array(CORPUS_SPECTRUM_DB) - long_term_spectrum_db(speech))
    speech = lfilter(corpus_coloured, [1.0], speech)  # within the equaliser's ±12 dB of the corpus' spectrum
    dark = lfilter(equalizing_filter(np.array([3.0, 0.0, -1.0, -6.0, -9.0, -12.0, -4.0])), [1.0], speech)
    prepared = pipeline.prepare(skimage.data.astronaut())

    def beta(audio, spectrum):
        params = GenerationParams(pose="still", speech_spectrum_db=spectrum)
        return pipeline.motion(prepared, audio.astype(np.float32), params)["beta"][25:]

    equalized = (beta(speech, CORPUS_SPECTRUM_DB) - beta(dark, CORPUS_SPECTRUM_DB)).abs().mean()
    raw = (beta(speech, None) - beta(dark, None)).abs().mean()
    spread = beta(speech, CORPUS_SPECTRUM_DB).std(dim=0).mean()
    assert equalized < 0.1 * spread, (equalized, spread)
    assert raw > 3 * equalized, (raw, equalized)


def test_expression_scale_defaults_to_the_checkpoints_calibration(pipeline, tiny_checkpoints, tmp_path):
    """``expression_scale=None`` (the default) takes the facial-motion checkpoint's own scale (the tiny config's
    calibration, or 1.5 saved in another checkpoint); a given scale replaces it: β̂ = clamp(g · raw, 0, 1) and
    Ô_lip = g · raw, raw being scale 1."""
    from talkinghead.lightning import FacialMotionModule

    config = yaml.safe_load((ROOT / "lightning_configs" / "facial_motion_tiny.yaml").read_text())
    assert pipeline.facial_motion.expression_scale == config["model"]["init_args"]["expression_scale"]
    calibrated = 1.5
    torch.manual_seed(0)
    module = FacialMotionModule(**{**tiny_init_args("facial_motion"), "expression_scale": calibrated})
    path = save_checkpoint(module, tmp_path / "facial_motion.ckpt")
    scaled = TalkingHeadPipeline.from_checkpoints(tiny_checkpoints, facial_motion=path)
    assert scaled.facial_motion.expression_scale == calibrated
    speech = speech_like(1.2, seed=4).astype(np.float32)
    prepared = scaled.prepare(skimage.data.astronaut())

    def motion(scale):
        return scaled.motion(prepared, speech, GenerationParams(pose="still", expression_scale=scale))

    raw, default, half = motion(1.0), motion(None), motion(0.5)
    for scale, out in ((calibrated, default), (0.5, half)):
        torch.testing.assert_close(out["beta"], (raw["beta"] * scale).clamp(0, 1), atol=0, rtol=0)
        torch.testing.assert_close(out["lip_offsets"], raw["lip_offsets"] * scale, atol=0, rtol=0)
    assert raw["lip_offsets"].abs().mean() > 0 and raw["beta"].std(dim=0).mean() > 0  # not a trivial motion
    assert GenerationParams().expression_scale is None  # the default is the checkpoint's calibration


def test_full_frame_pastes_into_the_whole_portrait(pipeline, inputs, tmp_path):
    pipeline.generate(
        inputs["portrait"],
        inputs["speech"],
        tmp_path / "full.mp4",
        GenerationParams(pose="still", full_frame=True),
        progress=False,
    )
    frames = _frames(tmp_path / "full.mp4")
    assert frames.shape[1:] == (512, 512, 3)
    corner = skimage.data.astronaut()[-40:, -40:].astype(float)  # far from the face: the photo itself
    assert np.abs(frames[0, -40:, -40:].astype(float) - corner).mean() < 4


def test_cli_writes_the_video_and_converts_a_grayscale_portrait(tiny_checkpoints, inputs, tmp_path, capsys):
    out = tmp_path / "gray.mp4"
    argv = [
        "--image",
        str(inputs["gray"]),
        "--audio",
        str(inputs["speech"]),
        "--out",
        str(out),
        "--checkpoints",
        str(tiny_checkpoints),
        "--quiet",
        "--batch-size",
        "7",
    ]
    assert generate_main(argv) == 0
    assert f"wrote {out}" in capsys.readouterr().out and probe_video(out).has_audio


@pytest.mark.parametrize(
    ("image", "audio", "out", "message"),
    [
        ("missing", "speech", "out.mp4", "no such file"),
        ("notes", "speech", "out.mp4", "not a readable image"),
        ("noface", "speech", "out.mp4", "no face found"),
        ("small", "speech", "out.mp4", "face too small"),
        ("portrait", "empty", "out.mp4", "empty file"),
        ("portrait", "silent", "out.mp4", "silent"),
        ("portrait", "corrupt", "out.mp4", "not decodable"),
        ("portrait", "speech", "out.avi", "unsupported container"),
        ("portrait", "speech", "missing/out.mp4", "does not exist"),
    ],
)
def test_cli_bad_inputs_are_one_line_with_exit_2_and_no_output(
    tiny_checkpoints, inputs, tmp_path, capsys, image, audio, out, message
):
    image_path = inputs.get(image, tmp_path / "missing.png")
    argv = [
        "--image",
        str(image_path),
        "--audio",
        str(inputs[audio]),
        "--out",
        str(tmp_path / out),
        "--checkpoints",
        str(tiny_checkpoints),
        "--quiet",
    ]
    assert generate_main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("talkinghead-generate: error:") and message in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_cli_missing_checkpoints_are_named(inputs, tmp_path, capsys):
    argv = [
        "--image",
        str(inputs["portrait"]),
        "--audio",
        str(inputs["speech"]),
        "--out",
        str(tmp_path / "o.mp4"),
        "--checkpoints",
        str(tmp_path / "none"),
    ]
    assert generate_main(argv) == 2
    assert "facial_motion.ckpt" in capsys.readouterr().err


def test_portraits_are_fitted_on_the_cpu_whatever_the_networks_device(pipeline, tiny_checkpoints, inputs):
    """Networks on another device (``meta`` stands in for CUDA: an operation mixing it with CPU tensors raises,
    as one mixing CUDA and CPU tensors does) still prepare a portrait: the landmark fit runs on the CPU and
    gives exactly the CPU pipeline's α, β and pose."""
    elsewhere = TalkingHeadPipeline.from_checkpoints(tiny_checkpoints, device="meta")
    assert next(elsewhere.motion_vae.parameters()).device.type == "meta"
    fitted = elsewhere.prepare_file(inputs["portrait"]).portrait
    reference = pipeline.prepare_file(inputs["portrait"]).portrait
    for name in ("alpha", "beta", "pose"):
        assert torch.equal(getattr(fitted, name), getattr(reference, name)), name
