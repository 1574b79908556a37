"""Exported weights (``tools/export_weights.py``, :mod:`talkinghead.models.export`) and loading them.

Stand-ins: the session fixture ``tiny_checkpoints`` (conftest: the ``*_tiny.yaml`` model arguments with random
weights, no training), a copy of its facial-motion checkpoint with a recorded training state added (epoch, steps,
a ``ModelCheckpoint`` score, data module arguments: the values are made up here, not trained), and a facial-motion
checkpoint on a small random wav2vec 2.0 (``save_wav2vec2_standin``). Generation uses a stand-in for the fitted
portrait (:func:`_stand_in_portrait`). The hub test builds huggingface_hub's cache layout by hand in a
temporary folder, with offline mode on: no network.
"""

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import skimage.data
import soundfile as sf
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from talkinghead.face.portrait import Portrait
from talkinghead.lightning import FacialMotionModule
from talkinghead.media import iter_video_frames
from talkinghead.models.audio_to_motion import AudioToMotion
from talkinghead.models.checkpoints import load_network, read_checkpoint, substate
from talkinghead.models.export import ExportError, export_files, load_exported_network, write_export
from talkinghead.pipeline import GenerationParams, TalkingHeadPipeline
from talkinghead.pipeline.cli import main as generate_main
from talkinghead.pipeline.inputs import GenerationInputError
from talkinghead.pipeline.pipeline import PreparedPortrait
from tests.helpers import load_tool, save_checkpoint, save_wav2vec2_standin, speech_like, tiny_init_args

STAGES = {"facial_motion": "audio_to_motion", "pose_mapper": "head_pose", "motion_vae": "mesh_to_video"}
SECONDS = 0.12
PARAMS = GenerationParams(seed=3)
HUB_ID = "someone/talkinghead-tiny"
COMMIT = "0123456789abcdef0123456789abcdef01234567"

export_weights = load_tool("export_weights")


def _with_training_state(checkpoint: Path, out: Path) -> Path:
    """``checkpoint`` with the entries a fit adds (made-up values): epoch, steps, callback state, data module."""
    state = read_checkpoint(checkpoint)
    state["epoch"], state["global_step"] = 7, 96
    key = "ModelCheckpoint{'monitor': 'val/lip_vertex_error', 'mode': 'min'}"
    state["callbacks"] = {
        key: {"monitor": "val/lip_vertex_error", "best_model_score": torch.tensor(0.125), "current_score": 0.25}
    }
    state["datamodule_hyper_parameters"] = {"root": "outputs/demo/corpus", "window": 50, "mode": "stage1"}
    torch.save(state, out)
    return out


@pytest.fixture(scope="module")
def checkpoints(tiny_checkpoints, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("trained")
    _with_training_state(tiny_checkpoints / "facial_motion.ckpt", folder / "facial_motion.ckpt")
    for stage in ("pose_mapper", "motion_vae"):
        (folder / f"{stage}.ckpt").symlink_to(tiny_checkpoints / f"{stage}.ckpt")
    return folder


@pytest.fixture(scope="module")
def exported(checkpoints, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "weights"
    assert export_weights.main([str(checkpoints), str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    Image.fromarray(skimage.data.astronaut()).save(folder / "portrait.png")
    sf.write(folder / "speech.wav", speech_like(SECONDS, seed=1), 16000)
    return {"image": folder / "portrait.png", "audio": folder / "speech.wav"}


def test_every_exported_tensor_equals_the_checkpoints_and_training_parts_stay_behind(checkpoints, exported):
    for stage, name in STAGES.items():
        checkpoint = read_checkpoint(checkpoints / f"{stage}.ckpt")
        expected = substate(checkpoint, "model.")
        weights = load_file(exported / f"{name}.safetensors")
        assert weights.keys() == expected.keys() and len(weights) > 50
        for key, tensor in expected.items():
            assert weights[key].dtype == tensor.dtype and torch.equal(weights[key], tensor), key
        left_behind = [key for key in checkpoint["state_dict"] if not key.startswith("model.")]
        if stage == "motion_vae":  # the discriminator and the perceptual loss network are training-only
            assert len(left_behind) > 0 and all(key.startswith("criterion.") for key in left_behind)
        else:
            assert left_behind == []


def test_the_export_is_safetensors_json_and_a_card_without_any_pickle(exported):
    assert sorted(path.name for path in exported.iterdir()) == sorted(export_files())
    assert not list(exported.parent.glob(".*"))  # no temporary folder left
    for path in exported.iterdir():
        head = path.read_bytes()[:2]
        assert head[:1] != b"\x80" and head != b"PK", f"{path.name} looks like a pickle or a torch zip"
    for name in STAGES.values():
        config = json.loads((exported / f"{name}.json").read_text())
        with safe_open(exported / f"{name}.safetensors", framework="pt") as weights:
            assert (
                weights.metadata()["class"]
                == config["class"]
                == load_exported_network(exported, name).__class__.__name__
            )
            assert len(list(weights.keys())) > 50


def test_model_card_records_data_length_metrics_use_and_licence(exported):
    card = (exported / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0\n")
    assert "epoch 7 (0-based, when saved), 96 optimizer steps" in card
    assert "`val/lip_vertex_error`: best 0.125, latest 0.25 (ModelCheckpoint)" in card
    assert "shards under `outputs/demo/corpus`" in card and '"window": 50' in card
    assert card.count("none recorded in the checkpoint") == 2  # the two stand-ins without a training state
    assert "## Intended use" in card and "## Limits" in card and "Apache-2.0" in card


def _stand_in_portrait() -> PreparedPortrait:
    """The astronaut's face region at 256² with α = β = 0 and a frontal pose, in place of a fitted portrait (fitting
    is not what an export changes; tests/test_pipeline.py covers it)."""
    image = np.ascontiguousarray(skimage.data.astronaut()[0:256, 128:384])
    portrait = Portrait(
        image=image,
        landmarks=np.zeros((468, 2), np.float32),
        landmark_depth=np.zeros(468, np.float32),
        alpha=torch.zeros(40),
        beta=torch.zeros(52),
        pose=torch.zeros(6),
        lip_offsets=torch.zeros(40, 3),
        fit_residual=0.0,
        person_mask=np.ones((256, 256), np.float32),
    )
    return PreparedPortrait(image, (0, 0, 256), portrait, [])


PORTRAIT = _stand_in_portrait()


@contextmanager
def stand_in_portrait():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TalkingHeadPipeline, "prepare_file", lambda self, image, face_index=None: PORTRAIT)
        yield


@pytest.fixture(scope="module")
def reference(checkpoints, inputs, tmp_path_factory) -> dict:
    """The video of the checkpoints (seeded) and its decoded frames."""
    pipeline = TalkingHeadPipeline.from_checkpoints(checkpoints)
    out = tmp_path_factory.mktemp("reference") / "checkpoints.mp4"
    with stand_in_portrait():
        result = pipeline.generate(inputs["image"], inputs["audio"], out, PARAMS, progress=False)
    return {"result": result, "frames": _frames(out)}


def _frames(path: Path) -> np.ndarray:
    return np.stack(list(iter_video_frames(path)))


def test_generating_from_the_export_gives_the_checkpoints_video(exported, inputs, reference, tmp_path):
    pipeline = TalkingHeadPipeline.from_pretrained(exported)
    with stand_in_portrait():
        result = pipeline.generate(inputs["image"], inputs["audio"], tmp_path / "export.mp4", PARAMS, progress=False)
    expected = reference["result"]
    assert result.num_frames == expected.num_frames == int(25 * SECONDS)
    assert torch.equal(result.poses, expected.poses) and torch.equal(result.beta, expected.beta)
    assert (result.poses - result.poses[:1]).abs().max() > 0  # generated head motion, not a still pose
    frames = _frames(tmp_path / "export.mp4")
    assert frames.shape == (int(25 * SECONDS), 256, 256, 3) and np.array_equal(frames, reference["frames"])


def test_cli_generates_from_an_export_folder(exported, inputs, reference, tmp_path, capsys):
    out = tmp_path / "cli.mp4"
    argv = ["--image", str(inputs["image"]), "--audio", str(inputs["audio"]), "--out", str(out), "--quiet"]
    argv += ["--checkpoints", str(exported), "--seed", str(PARAMS.seed), "--batch-size", str(PARAMS.batch_size)]
    with stand_in_portrait():
        assert generate_main(argv) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert np.array_equal(_frames(out), reference["frames"])


def _hub_cache(exported: Path, cache: Path) -> Path:
    """huggingface_hub's cache layout holding ``exported`` as ``HUB_ID`` at ``COMMIT`` on ``main``."""
    repo = cache / f"models--{HUB_ID.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    shutil.copytree(exported, repo / "snapshots" / COMMIT)
    return cache


def _holds_export(pipeline: TalkingHeadPipeline, exported: Path) -> bool:
    networks = {
        "audio_to_motion": pipeline.facial_motion,
        "head_pose": pipeline.pose_mapper,
        "mesh_to_video": pipeline.motion_vae,
    }
    for name, network in networks.items():
        weights, state = load_file(exported / f"{name}.safetensors"), network.state_dict()
        if weights.keys() != state.keys() or not all(torch.equal(state[key], value) for key, value in weights.items()):
            return False
    return True


def test_a_cached_hub_id_loads_offline_in_python_and_the_cli(exported, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    cache = _hub_cache(exported, tmp_path / "hub")
    assert _holds_export(TalkingHeadPipeline.from_pretrained(HUB_ID, cache_dir=cache), exported)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))  # the default cache of the CLI
    assert _holds_export(TalkingHeadPipeline.load(HUB_ID), exported)
    with pytest.raises(GenerationInputError, match="not in the Hugging Face cache"):
        TalkingHeadPipeline.from_pretrained("someone/not-cached")


def _one_error_line(capsys, prefix: str) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prefix}: error:"), lines
    return lines[0]


def test_cli_names_a_folder_that_is_neither_checkpoints_nor_an_export(exported, tmp_path, capsys):
    argv = ["--image", "p.png", "--audio", "s.wav", "--out", str(tmp_path / "o.mp4"), "--checkpoints"]
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("nothing here")
    assert generate_main([*argv, str(tmp_path / "junk")]) == 2
    line = _one_error_line(capsys, "talkinghead-generate")
    assert "neither Lightning checkpoints" in line and "facial_motion.ckpt" in line and "head_pose.json" in line
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    (broken / "head_pose.safetensors").write_bytes(b"\x00" * 64)
    assert generate_main([*argv, str(broken)]) == 2
    assert "head_pose.safetensors: not readable safetensors" in _one_error_line(capsys, "talkinghead-generate")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["broken", "junk"]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing folder", "no such folder"),
        ("missing checkpoint", "pose_mapper.ckpt: no such file"),
        ("not a checkpoint", "motion_vae.ckpt: not a readable checkpoint"),
        ("occupied output", "exists and is not an export"),
    ],
)
def test_export_bad_input_is_one_line_exit_2_and_writes_nothing(checkpoints, tmp_path, capsys, case, message):
    source, out = tmp_path / "checkpoints", tmp_path / "weights"
    if case != "missing folder":
        source.mkdir()
        for stage in STAGES:
            if not (case == "missing checkpoint" and stage == "pose_mapper"):
                (source / f"{stage}.ckpt").symlink_to(checkpoints / f"{stage}.ckpt")
    if case == "not a checkpoint":
        (source / "motion_vae.ckpt").unlink()
        (source / "motion_vae.ckpt").write_text("not a checkpoint")
    if case == "occupied output":
        out.mkdir()
        (out / "mine.txt").write_text("keep me")
    before = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))
    assert export_weights.main([str(source), str(out)]) == 2
    assert message in _one_error_line(capsys, "export_weights")
    assert sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*")) == before


def test_a_failed_write_keeps_the_previous_export_and_leaves_no_temporary_folder(exported, tmp_path, monkeypatch):
    out = tmp_path / "weights"
    shutil.copytree(exported, out)
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    networks = {name: (nn.Linear(2, 2), {}) for name in STAGES.values()}
    networks["head_pose"] = (nn.Linear(2, 2), {"unserialisable": object()})
    with pytest.raises(ExportError, match="head_pose: constructor arguments are not plain JSON"):
        write_export(out, networks, "card")
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["weights"]


def test_wav2vec2_audio_encoder_round_trips_without_the_pretrained_folder(tiny_checkpoints, tmp_path):
    standin = save_wav2vec2_standin(tmp_path / "wav2vec2")
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    torch.manual_seed(0)
    module = FacialMotionModule(
        **{
            **tiny_init_args("facial_motion"),
            "audio_encoder": "wav2vec2",
            "audio_encoder_args": {"name_or_path": str(standin)},
        }
    )
    save_checkpoint(module, folder / "facial_motion.ckpt")
    for stage in ("pose_mapper", "motion_vae"):
        (folder / f"{stage}.ckpt").symlink_to(tiny_checkpoints / f"{stage}.ckpt")
    assert export_weights.main([str(folder), str(tmp_path / "weights")]) == 0
    shutil.rmtree(standin)  # the export alone must rebuild the encoder
    arguments = json.loads((tmp_path / "weights" / "audio_to_motion.json").read_text())["arguments"]
    assert "name_or_path" not in arguments["audio_encoder_args"]
    assert arguments["audio_encoder_args"]["config"]["hidden_size"] == 32
    original = load_network(AudioToMotion, folder / "facial_motion.ckpt")
    loaded = load_exported_network(tmp_path / "weights", "audio_to_motion")
    weights = load_file(tmp_path / "weights" / "audio_to_motion.safetensors")
    assert sum(key.startswith("audio_encoder.model.") for key in weights) > 20
    assert all(torch.equal(original.state_dict()[key], value) for key, value in weights.items())
    speech = torch.from_numpy(speech_like(0.2, seed=2))[None]
    with torch.no_grad():
        features = loaded.audio_encoder(speech, 5)
        assert features.shape == (1, 5, 32) and torch.equal(features, original.audio_encoder(speech, 5))
