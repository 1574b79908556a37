"""Generator inputs: image modes converted, faces chosen or rejected, pose files, paste-back, video I/O."""

import numpy as np
import pytest
import skimage.data
import soundfile as sf
import torch
from PIL import Image

from talkinghead.audio.level import CORPUS_LEVEL_DB
from talkinghead.face.builtin import builtin_morphable_model
from talkinghead.face.camera import PerspectiveCamera
from talkinghead.media import VideoError, VideoWriter, iter_video_frames, probe_video
from talkinghead.pipeline.cli import generation_params, parser
from talkinghead.pipeline.cli import main as generate_main
from talkinghead.pipeline.inputs import (
    MIN_FACE_SIZE,
    GenerationInputError,
    choose_face,
    follow,
    load_portrait_image,
    load_pose_file,
)
from talkinghead.pipeline.paste_back import PasteBack, feather_mask
from talkinghead.pipeline.pipeline import GenerationParams, TalkingHeadPipeline, check_output_path
from tests.helpers import speech_like

ASTRONAUT = skimage.data.astronaut()


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16"])
def test_image_modes_are_converted_not_rejected(tmp_path, mode):
    """Every mode loads as (H, W, 3) uint8 close to the RGB (or gray) original: mean error < 3 levels."""
    rgb = Image.fromarray(ASTRONAUT)
    gray = np.asarray(rgb.convert("L"), dtype=np.float64)
    if mode == "I;16":
        image = Image.fromarray((gray * 257).astype(np.uint16))
        suffix = "png"
    else:
        image = rgb.convert(mode)
        suffix = "jpg" if mode == "CMYK" else "png"
    path = tmp_path / f"portrait.{suffix}"
    image.save(path, quality=95) if suffix == "jpg" else image.save(path)
    loaded = load_portrait_image(path)
    assert loaded.dtype == np.uint8 and loaded.shape == ASTRONAUT.shape
    if mode in ("L", "LA", "I;16"):
        expected = gray[..., None].repeat(3, 2)
    else:
        expected = np.asarray(rgb.convert(mode).convert("RGB"))
    tolerance = 6.0 if mode in ("P", "CMYK") else 3.0  # palette quantisation / JPEG
    assert np.abs(loaded.astype(np.float64) - expected).mean() < tolerance


def test_exif_orientation_is_applied(tmp_path):
    image = Image.fromarray(ASTRONAUT[:, :400])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    image.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    assert load_portrait_image(tmp_path / "rotated.jpg").shape == (400, 512, 3)


@pytest.mark.parametrize("content", [b"", b"this is not an image"])
def test_unreadable_images_are_one_line_errors(tmp_path, content):
    path = tmp_path / "portrait.png"
    path.write_bytes(content)
    with pytest.raises(GenerationInputError, match="not a readable image") as error:
        load_portrait_image(path)
    assert "\n" not in str(error.value)
    with pytest.raises(GenerationInputError, match="no such file"):
        load_portrait_image(tmp_path / "missing.png")


def test_no_face_and_tiny_face_are_rejected():
    with pytest.raises(GenerationInputError, match="no face found"):
        choose_face(np.full((256, 256, 3), 127, np.uint8), None, "flat.png")
    landmarks, notes = choose_face(ASTRONAUT, None, "astronaut.png")
    assert np.ptp(landmarks[:, :2], axis=0).max() > 1.5 * MIN_FACE_SIZE and not notes
    half = np.asarray(Image.fromarray(ASTRONAUT).resize((256, 256), Image.Resampling.LANCZOS))
    with pytest.raises(GenerationInputError, match="face too small"):  # the same face at half size: ~52 px
        choose_face(half, None, "small.png")


def test_several_faces_pick_the_largest_and_say_so():
    face = ASTRONAUT[:300, 80:380]
    canvas = np.full((300, 520, 3), 230, np.uint8)
    canvas[:, :300] = face
    canvas[40:260, 300:520] = np.asarray(Image.fromarray(face).resize((220, 220)))
    largest, notes = choose_face(canvas, None, "two.png")
    assert largest[:, 0].mean() < 300 and notes and "2 faces" in notes[0]
    other, notes = choose_face(canvas, 1, "two.png")
    assert other[:, 0].mean() > 300 and not notes
    with pytest.raises(GenerationInputError, match="--face-index 2 but 2 face"):
        choose_face(canvas, 2, "two.png")


def test_pose_files_give_motion_relative_to_their_first_row(tmp_path):
    model, camera = builtin_morphable_model(), PerspectiveCamera()
    poses = np.random.default_rng(0).normal(size=(7, 6))
    np.save(tmp_path / "poses.npy", poses)
    (tmp_path / "poses.csv").write_text("pitch,yaw,roll,tx,ty,tz\n" + "\n".join(",".join(map(str, r)) for r in poses))
    for name in ("poses.npy", "poses.csv"):
        relative = load_pose_file(tmp_path / name, model, camera)
        assert torch.allclose(relative, torch.from_numpy(poses - poses[:1]).float(), atol=1e-6)
    (tmp_path / "bad.csv").write_text("1,2,3\n4,5,6\n")
    with pytest.raises(GenerationInputError, match=r"expected shape \(T, 6\)"):
        load_pose_file(tmp_path / "bad.csv", model, camera)
    (tmp_path / "poses.txt").write_text("1")
    with pytest.raises(GenerationInputError, match="unsupported type .txt"):
        load_pose_file(tmp_path / "poses.txt", model, camera)


def test_pose_video_recovers_a_known_roll(tmp_path):
    """A portrait rotated in the image plane by a known roll: the estimated roll follows it (corr ≥ 0.95)."""
    import cv2

    face = np.asarray(Image.fromarray(ASTRONAUT[:300, 80:380]).resize((256, 256)))
    roll = 12 * np.sin(np.linspace(0, 2 * np.pi, 20))
    with VideoWriter(tmp_path / "roll.mp4") as writer:
        for angle in roll:
            matrix = cv2.getRotationMatrix2D((128, 128), angle, 1.0)
            writer.write(cv2.warpAffine(face, matrix, (256, 256), borderMode=cv2.BORDER_REPLICATE))
    relative = load_pose_file(tmp_path / "roll.mp4", builtin_morphable_model(), PerspectiveCamera())
    assert relative.shape == (20, 6)
    estimated = np.degrees(relative[:, 2].numpy())
    assert np.corrcoef(estimated, roll - roll[0])[0, 1] >= 0.95


def test_follow_plays_a_short_sequence_back_and_forth():
    relative = torch.arange(4.0)[:, None].expand(-1, 6)
    assert follow(relative, 10)[:, 0].tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert follow(relative[:1], 3).shape == (3, 6)


def test_paste_back_keeps_the_photo_outside_the_box_and_the_crop_inside():
    image = np.full((300, 400, 3), 50, np.uint8)
    paste = PasteBack(image, (100, 20, 200), max_side=1280)
    frame = paste(np.full((256, 256, 3), 250, np.uint8))
    assert frame.shape == (300, 400, 3)
    assert (frame[:, :100] == 50).all() and (frame[:, 300:] == 50).all()
    assert frame[120, 200].tolist() == [250, 250, 250]
    assert feather_mask(10)[0].max() == 0.0 and feather_mask(100)[50, 50] == 1.0
    shrunk = PasteBack(np.zeros((3001, 2001, 3), np.uint8), (-50, -50, 800), max_side=1000)
    assert shrunk.frame_size == (1000, 666)
    assert shrunk(np.zeros((256, 256, 3), np.uint8)).shape == (1000, 666, 3)


def test_output_path_checks(tmp_path):
    with pytest.raises(GenerationInputError, match="unsupported container .avi"):
        check_output_path(tmp_path / "out.avi")
    with pytest.raises(GenerationInputError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "out.mp4")
    (tmp_path / "folder.mp4").mkdir()
    with pytest.raises(GenerationInputError, match="is a folder"):
        check_output_path(tmp_path / "folder.mp4")


def test_video_writer_round_trip_with_audio_and_atomicity(tmp_path):
    """75 frames + 3 s of speech → a 25 fps H.264/AAC mp4 whose frames decode back within 2 levels."""
    from talkinghead.audio.io import load_audio

    audio = (0.3 * np.sin(np.arange(48000) / 16000 * 2 * np.pi * 220)).astype(np.float32)
    frames = np.repeat(np.linspace(20, 230, 75).astype(np.uint8)[:, None, None, None], 64, 1).repeat(64, 2)
    frames = frames.repeat(3, 3)
    with VideoWriter(tmp_path / "out.mp4", audio=audio) as writer:
        writer.write(frames[:40])
        writer.write(frames[40:])
    info = probe_video(tmp_path / "out.mp4")
    assert (info.fps, info.num_frames, info.has_audio, info.width) == (25.0, 75, True, 64)
    decoded = np.stack(list(iter_video_frames(tmp_path / "out.mp4", fps=25)))
    assert decoded.shape == frames.shape and np.abs(decoded.astype(int) - frames).mean() < 2
    assert abs(len(load_audio(tmp_path / "out.mp4")) - 48000) <= 1024
    assert len(list(iter_video_frames(tmp_path / "out.mp4", fps=10))) == 30
    with pytest.raises(RuntimeError), VideoWriter(tmp_path / "failed.mp4") as writer:
        writer.write(frames[:5])
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    with pytest.raises(VideoError, match="no such file"):
        probe_video(tmp_path / "missing.mp4")


@pytest.fixture(scope="module")
def pipeline(tiny_checkpoints) -> TalkingHeadPipeline:
    return TalkingHeadPipeline.from_checkpoints(tiny_checkpoints)


@pytest.fixture
def generate_files(tmp_path) -> list[str]:
    """``--image`` and ``--audio`` of a readable portrait and speech, so that only the flags a test adds can be
    at fault."""
    Image.fromarray(ASTRONAUT).save(tmp_path / "portrait.png")
    sf.write(tmp_path / "speech.wav", speech_like(0.4, seed=7), 16000)
    return ["--image", str(tmp_path / "portrait.png"), "--audio", str(tmp_path / "speech.wav")]


def generate_error(argv: list[str], capsys) -> str:
    """``talkinghead-generate argv`` in-process: asserts exit 2 and one line on stderr, returns that line."""
    assert generate_main([*argv, "--quiet"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    return lines[0]


GAIN_OFF = (
    "cannot be combined with --keep-speech-level, which turns the gain control (and with it the pause attenuation) off"
)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--keep-speech-level", "--speech-level", "-30"], f"--speech-level {GAIN_OFF}"),
        (["--keep-speech-level", "--pause-depth", "10"], f"--pause-depth {GAIN_OFF}"),
        (
            ["--pause-depth", "0", "--keep-speech-level", "--speech-level", "-26"],
            f"--speech-level and --pause-depth {GAIN_OFF}",
        ),
        (["--expression-scale", "nan"], "--expression-scale must be 0 or more, got nan"),
        (["--expression-scale", "-2"], "--expression-scale must be 0 or more, got -2"),
        (["--pause-depth", "nan"], "--pause-depth must be 0 or more dB, got nan"),
        (["--temperature", "-1"], "--temperature must be 0 or more, got -1"),
        (["--temperature", "nan"], "--temperature must be 0 or more, got nan"),
        (["--top-k", "-3"], "--top-k must be 0 (all codes) or more, got -3"),
        (["--speech-level", "nan"], "--speech-level must be a finite level in dBFS, got nan"),
        (
            ["--stream", "--batch-size", "2", "--stream-batch", "4"],
            "--stream-batch 4 exceeds --batch-size 2: a stream renders its ready frames as one stage-2 batch",
        ),
    ],
)
def test_cli_flag_values_and_combinations_are_checked(
    tiny_checkpoints, generate_files, tmp_path, capsys, flags, message
):
    """A flag the run would drop or a value outside its domain: the exact one-line error, exit 2, no output."""
    argv = [*generate_files, "--checkpoints", str(tiny_checkpoints), "--out", str(tmp_path / "out.mp4"), *flags]
    assert generate_error(argv, capsys) == f"talkinghead-generate: error: {message}"
    assert not (tmp_path / "out.mp4").exists()


def test_cli_flags_left_out_take_their_defaults():
    """--speech-level and --pause-depth default to the corpus level and 20 dB; --keep-speech-level alone turns the
    gain control off; --top-k 0 is all codes; the stream batch defaults to 4, or to a smaller --batch-size."""
    required = ["--image", "p.png", "--audio", "s.wav", "--out", "o.mp4"]
    params = generation_params(parser().parse_args(required))
    assert (params.speech_level_db, params.pause_depth_db, params.top_k) == (CORPUS_LEVEL_DB, 20.0, None)
    assert generation_params(parser().parse_args([*required, "--keep-speech-level"])).speech_level_db is None
    streamed = [*required, "--stream", "--batch-size"]
    assert generation_params(parser().parse_args([*streamed, "2"])).stream_batch == 2
    assert generation_params(parser().parse_args([*streamed, "16"])).stream_batch == 4


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (GenerationParams(expression_scale=float("nan")), "expression_scale must be 0 or more, got nan"),
        (GenerationParams(temperature=-1.0), "temperature must be 0 or more, got -1"),
        (GenerationParams(top_k=0), "top_k must be 1 or more (None = all codes), got 0"),
        (GenerationParams(speech_level_db=float("inf")), "speech_level_db must be a finite level in dBFS, got inf"),
        (GenerationParams(pause_depth_db=-3.0), "pause_depth_db must be 0 or more dB, got -3"),
        (GenerationParams(batch_size=0), "batch_size must be ≥ 1, got 0"),
    ],
)
def test_the_python_api_checks_its_params_before_writing(pipeline, generate_files, tmp_path, params, message):
    """``generate`` and ``open_stream`` reject a value outside its domain, naming the field, before any output or
    portrait fit."""
    image, audio = generate_files[1], generate_files[3]
    with pytest.raises(GenerationInputError) as error:
        pipeline.generate(image, audio, tmp_path / "out.mp4", params)
    assert str(error.value) == message
    assert not (tmp_path / "out.mp4").exists()
    with pytest.raises(GenerationInputError) as error:
        pipeline.open_stream(image, params)
    assert str(error.value) == message


def test_a_stream_batch_larger_than_the_batch_size_is_rejected(pipeline, generate_files):
    with pytest.raises(GenerationInputError) as error:
        pipeline.open_stream(generate_files[1], GenerationParams(batch_size=2))
    message = "stream_batch 4 exceeds batch_size 2: a stream renders its ready frames as one stage-2 batch"
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("flag", "file", "stage", "network"),
    [
        ("--facial-motion", "pose_mapper.ckpt", "facial_motion", "AudioToMotion"),
        ("--pose-mapper", "pose_vqvae.ckpt", "pose_mapper", "HeadPoseGenerator"),
        ("--motion-vae", "pose_mapper.ckpt", "motion_vae", "MeshToVideo"),
    ],
)
def test_cli_another_stages_checkpoint_is_named(
    tiny_checkpoints, generate_files, tmp_path, capsys, flag, file, stage, network
):
    path = tiny_checkpoints / file
    argv = [
        *generate_files,
        "--checkpoints",
        str(tiny_checkpoints),
        "--out",
        str(tmp_path / "out.mp4"),
        flag,
        str(path),
    ]
    assert generate_error(argv, capsys) == (
        f"talkinghead-generate: error: checkpoint {str(path)!r}: not a {stage} checkpoint (its hyperparameters and "
        f"weights do not fit the {network} network)"
    )
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint"])
def test_an_unreadable_checkpoint_is_named(tiny_checkpoints, tmp_path, content):
    path = tmp_path / "motion_vae.ckpt"
    path.write_bytes(content)
    with pytest.raises(GenerationInputError) as error:
        TalkingHeadPipeline.from_checkpoints(tiny_checkpoints, motion_vae=path)
    assert str(error.value) == f"checkpoint {str(path)!r} (motion_vae): not a readable checkpoint"
