"""The notebooks of ``notebooks/`` run end to end and are committed without outputs.

Each notebook is executed headless with nbclient on the session fixtures ``tiny_corpus`` and
``tiny_checkpoints`` (conftest: random weights, so the pictures show untrained networks). What a notebook prints
and writes is then checked against numbers computed here, independently of the notebook: the tiny corpus'
construction, the same checkpoints and clips run through by-hand metrics, the written videos read with PyAV.
The notebooks read their inputs from ``TALKINGHEAD_CORPUS`` / ``TALKINGHEAD_CHECKPOINTS``; notebook 05 also
writes to ``TALKINGHEAD_NOTEBOOK_OUT`` and speaks ``TALKINGHEAD_DEMO_TEXT`` (a short sentence here, for speed);
the kernel uses one intra-op thread (``OMP_NUM_THREADS=1``).
The kernel inherits this process's environment and runs this interpreter (``sys.executable``), whatever other
``python3`` kernelspecs the machine has.
"""

import base64
import io
import itertools
import json
import math
import re
import wave
from pathlib import Path

import av
import nbformat
import numpy as np
import pytest
import soundfile
import torch
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from talkinghead.conventions import FPS, SAMPLE_RATE
from talkinghead.data.datamodule import TalkingHeadDataModule
from talkinghead.data.shards import iter_clips
from talkinghead.face import builtin_morphable_model
from talkinghead.lightning import FacialMotionModule, MotionVAEGeneratorModule, PoseMapperModule, PoseVQVAEModule
from tests.helpers import TINY_CORPUS_ARGS, tiny_init_args

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = (
    "01_corpus_inspection",
    "02_audio_to_mesh",
    "03_pose_codebook",
    "04_mesh_to_video",
    "05_full_pipeline",
)


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory) -> KernelSpecManager:
    """Kernelspecs holding only ``python3`` = this interpreter with ipykernel."""
    folder = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(folder / "python3")
    return KernelSpecManager(kernel_dirs=[str(folder)])


def test_every_notebook_is_executed_by_this_file():
    assert tuple(sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stripped(name):
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(notebook)
    assert notebook.cells[0].cell_type == "markdown"
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name} cell {index} has outputs"
            assert cell.execution_count is None, f"{name} cell {index} has an execution count"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name, tiny_corpus, tiny_checkpoints, kernel_specs, tmp_path, monkeypatch):
    monkeypatch.setenv("TALKINGHEAD_CORPUS", str(tiny_corpus))
    monkeypatch.setenv("TALKINGHEAD_CHECKPOINTS", str(tiny_checkpoints))
    monkeypatch.setenv("TALKINGHEAD_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("TALKINGHEAD_DEMO_TEXT", "Hello there!")
    # One intra-op thread: these small tensors gain nothing from more, and on a busy 2-core machine (tests or a
    # training job beside the kernel) OpenMP threads contending for the cores make the portrait fit ~30× slower.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    kernel = KernelManager(kernel_name="python3", kernel_spec_manager=kernel_specs)
    client = NotebookClient(
        notebook, km=kernel, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute(cleanup_kc=True)  # raises CellExecutionError on the first failing cell
    errors = [out for cell in notebook.cells for out in cell.get("outputs", []) if out.output_type == "error"]
    assert not errors
    CHECKS[name](notebook, tiny_corpus, tiny_checkpoints, tmp_path)


# What each notebook printed or wrote, against numbers computed here: (notebook, corpus, checkpoints, out folder).
TINY = dict(zip(TINY_CORPUS_ARGS[::2], TINY_CORPUS_ARGS[1::2], strict=True))
CLIP_FRAMES = int(TINY["--seconds"]) * FPS  # every clip of the tiny corpus
LOAD = {"map_location": "cpu", "weights_only": True}


def _outputs(notebook: nbformat.NotebookNode, kind: str) -> list[str]:
    """The text of every ``stdout`` stream (kind ``stdout``) or of every display of a MIME type, in cell order."""
    outputs = [out for cell in notebook.cells for out in cell.get("outputs", [])]
    if kind == "stdout":
        return [out.text for out in outputs if out.output_type == "stream" and out.name == "stdout"]
    return [out.data[kind] for out in outputs if kind in out.get("data", {})]


def _stdout(notebook: nbformat.NotebookNode) -> str:
    return "".join(_outputs(notebook, "stdout"))


def _corpus_inspection(notebook, corpus: Path, checkpoints: Path, out: Path) -> None:
    """The summary is the tiny corpus' construction (6 clips of 2 s at 25 fps and 16 kHz) and the identities and
    splits of its ``index.json``; the stored landmarks are the mesh's projection; the player holds a clip's 2 s of
    speech at 16 kHz; three figures (contact sheet, mesh overlay, speech and blendshapes)."""
    text, seconds = _stdout(notebook), int(TINY["--seconds"])
    index = json.loads((corpus / "index.json").read_text())
    identities = len({clip["identity_id"] for clip in index["clips"].values()})
    assert f"{TINY['--clips']} clips, {identities} identities, {FPS} fps, {SAMPLE_RATE} Hz" in text
    splits = {m[1]: (int(m[2]), float(m[3])) for m in re.finditer(r"^ +(\w+) +(\d+) clips, +([\d.]+) s$", text, re.M)}
    assert splits == {split: (len(ids), len(ids) * seconds) for split, ids in index["splits"].items()}
    assert sum(count for count, _ in splits.values()) == int(TINY["--clips"])
    overlay = re.search(r" (\d+) frames; max \|projection − landmarks\| = ([\d.]+) px", text)
    assert int(overlay[1]) == CLIP_FRAMES and float(overlay[2]) < 1e-3
    (player,) = _outputs(notebook, "text/html")
    (wav,) = re.findall(r"data:audio/wav;base64,([A-Za-z0-9+/=]+)", player)
    with wave.open(io.BytesIO(base64.b64decode(wav))) as audio:
        layout = (audio.getnchannels(), audio.getframerate(), audio.getnframes())
    assert layout == (1, SAMPLE_RATE, seconds * SAMPLE_RATE)
    assert len(_outputs(notebook, "image/png")) == 3


def _audio_to_mesh(notebook, corpus: Path, checkpoints: Path, out: Path) -> None:
    """Each test clip's mean lip vertex error and its share of the mouth width, recomputed from the checkpoint and
    the clip: per frame the largest distance over the 40 lip vertices (cm), the width between the mouth corners
    (FaceMesh 61 and 291) of the true mesh."""
    lines = re.findall(r"^(\S+): (\d+) frames, mean LVE ([\d.]+) cm \(([\d.]+) % of the mouth width\)$",
                       _stdout(notebook), re.M)  # fmt: skip
    clips = list(iter_clips(corpus, split="test", fields=("audio", "alpha", "beta", "lip_offsets")))[:2]
    assert [line[0] for line in lines] == [clip.clip_id for clip in clips] and len(lines) == 2
    module = FacialMotionModule.load_from_checkpoint(checkpoints / "facial_motion.ckpt", **LOAD).eval()
    model = builtin_morphable_model()
    for (_, frames, error, share), clip in zip(lines, clips, strict=True):
        alpha = torch.from_numpy(clip.alpha)[None]
        with torch.no_grad():
            predicted = module(torch.from_numpy(clip.audio)[None], alpha, clip.num_frames)
        alpha = alpha.expand(clip.num_frames, -1)
        mesh_hat = model.vertices(alpha, predicted["beta"][0], predicted["lip_offsets"][0])
        mesh = model.vertices(alpha, torch.from_numpy(clip.beta), torch.from_numpy(clip.lip_offsets))
        expected = (mesh_hat - mesh)[:, model.lip_ids].norm(dim=-1).amax(dim=-1).mean().item()
        width = (mesh[:, 61] - mesh[:, 291]).norm(dim=-1).mean().item()
        assert int(frames) == clip.num_frames == CLIP_FRAMES
        assert float(error) == pytest.approx(expected, abs=6e-4)  # printed to 3 decimals
        assert float(share) == pytest.approx(100 * expected / width, abs=0.06)


def _pose_degrees(pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rad2deg(pose[..., :3]).double(), pose[..., 3:].double()


def _pose_codebook(notebook, corpus: Path, checkpoints: Path, out: Path) -> None:
    """The codebook's sizes are the tiny config's; code steps = ⌈50 / 4⌉ per clip; usage (codes used at least once)
    and perplexity (exp of each group's code entropy, averaged) from the checkpoint's codes of the corpus poses;
    HPD = the variance over frames of ‖(pitch, yaw, roll)‖ in degrees of the test clip's truth and of the mapper's
    seeds 0–2 (sampled here again), and their mean pairwise distance."""
    text, network = _stdout(notebook), tiny_init_args("pose_vqvae")["network"]
    groups, codes, frames = network["num_groups"], network["num_codes"], network["downsample"]
    assert f"codebook: {groups} group(s) of {codes} codes, {frames} frames per code" in text
    poses = [torch.from_numpy(clip.pose) for clip in iter_clips(corpus, fields=("pose",))]
    vqvae = PoseVQVAEModule.load_from_checkpoint(checkpoints / "pose_vqvae.ckpt", **LOAD).eval()
    with torch.no_grad():
        indices = torch.cat([vqvae(pose[None])["indices"][0] for pose in poses])  # (code steps, groups)
    counts = torch.stack([torch.bincount(indices[:, group], minlength=codes) for group in range(groups)]).double()
    share = counts / counts.sum(dim=1, keepdim=True)
    entropy = -torch.where(share > 0, share * share.log(), 0.0).sum(dim=1)
    usage = re.search(r"(\d+) clips, (\d+) code steps: usage ([\d.]+), perplexity ([\d.]+)", text)
    assert (int(usage[1]), int(usage[2])) == (len(poses), len(poses) * math.ceil(CLIP_FRAMES / frames))
    assert len(indices) == int(usage[2]) and len(poses) == int(TINY["--clips"])
    assert float(usage[3]) == pytest.approx((counts > 0).double().mean().item(), abs=6e-3)
    assert float(usage[4]) == pytest.approx(entropy.exp().mean().item(), abs=0.06)

    clip = next(iter_clips(corpus, split="test", fields=("audio", "alpha", "pose")))
    truth = torch.from_numpy(clip.pose)
    mapper = PoseMapperModule.load_from_checkpoint(checkpoints / "pose_mapper.ckpt", **LOAD).eval()
    with torch.no_grad():
        samples = [
            mapper(torch.from_numpy(clip.audio)[None], torch.from_numpy(clip.alpha)[None], truth[None, 0],
                   clip.num_frames, temperature=1.0, top_k=None, generator=torch.Generator().manual_seed(seed))[0]
            for seed in (0, 1, 2)
        ]  # fmt: skip
    hpd = re.search(r"HPD \(deg²\): ground truth ([\d.]+); seed 0 ([\d.]+), seed 1 ([\d.]+), seed 2 ([\d.]+)", text)
    for printed, pose in zip(hpd.groups(), (truth, *samples), strict=True):
        norms = _pose_degrees(pose)[0].norm(dim=-1)
        assert float(printed) == pytest.approx(norms.var(unbiased=False).item(), abs=6e-4)
    distance = re.search(r"mean pairwise distance between seeds: ([\d.]+)°, ([\d.]+) cm", text)
    for printed, parts in zip(distance.groups(), zip(*map(_pose_degrees, samples), strict=True), strict=True):
        mean = torch.stack([(a - b).norm(dim=-1).mean() for a, b in itertools.combinations(parts, 2)]).mean()
        assert float(printed) == pytest.approx(mean.item(), abs=6e-3)  # degrees, then cm


def _mesh_to_video(notebook, corpus: Path, checkpoints: Path, out: Path) -> None:
    """Shapes from the tiny config (256² frames, 64² motion maps, 40 lip maps) for the batch of 4 pairs; the pairs
    are the first test clip's frames 12, 24, 36, 48 (stride 12) driven from its frame 0; the printed PSNRs are
    10·log10(1 / MSE) of the frames the checkpoint generates for them against the corpus frames."""
    text, init = _stdout(notebook), tiny_init_args("motion_vae")
    image, motion = init["image_size"], init["motion_size"]
    shapes = {m[1]: tuple(map(int, m[2].split(", "))) for m in re.finditer(r"^(\w+) +\(([\d, ]+)\)$", text, re.M)}
    assert shapes == {
        "reference_frame": (4, 3, image, image), "pt_reference": (4, 3, motion, motion),
        "pt_driven": (4, 3, motion, motion), "lip_driven": (4, 40, motion, motion), "flow": (4, 2, motion, motion),
        "occlusion": (4, 1, image, image), "warped": (4, 3, image, image), "frame": (4, 3, image, image),
    }  # fmt: skip
    clip = next(iter_clips(corpus, split="test", fields=("frames",)))
    driven = list(range(12, clip.num_frames, 12))
    assert f"clips: {[clip.clip_id] * len(driven)} driven frames: {driven}" in text
    module = MotionVAEGeneratorModule.load_from_checkpoint(checkpoints / "motion_vae.ckpt", **LOAD).eval()
    data = TalkingHeadDataModule(str(corpus), mode="stage2", stride=12, batch_size=4)
    with torch.no_grad():
        batch = module.on_after_batch_transfer(next(iter(data.test_dataloader())), 0)
        frame = module.model(batch["reference_frame"], batch, sample=False)["frame"].clamp(0, 1).double()
    truth = torch.from_numpy(clip.frames[driven]).permute(0, 3, 1, 2).double() / 255
    expected = (10 * torch.log10(1 / (frame - truth).square().mean(dim=(1, 2, 3)))).tolist()
    printed = re.search(r"PSNR generated vs ground truth \(dB\): \[([^\]]*)\]", text)[1]
    assert [float(value) for value in printed.split(", ")] == pytest.approx(expected, abs=6e-3)


def _full_pipeline(notebook, corpus: Path, checkpoints: Path, out: Path) -> None:
    """The video has one frame per whole 40 ms of the demo speech, at 25 fps and the tiny config's 256², with the
    speech's duration of 16-kHz audio; the side-by-side video has the same frames twice as wide, its right half the
    result (up to the two H.264 encodings)."""
    speech = soundfile.info(out / "05_inputs" / "speech.wav")
    frames = speech.frames * FPS // speech.samplerate
    assert f"05_demo.mp4: {frames} frames" in _stdout(notebook) and frames > 0
    size = tiny_init_args("motion_vae")["image_size"]
    decoded = {}
    for name, width in (("05_demo.mp4", size), ("05_demo_side_by_side.mp4", 2 * size)):
        with av.open(str(out / name)) as container:
            video, audio = container.streams.video[0], container.streams.audio[0]
            assert (video.width, video.height, video.average_rate, audio.rate) == (width, size, FPS, SAMPLE_RATE)
            assert float(audio.duration * audio.time_base) == pytest.approx(speech.duration, abs=1e-3)
            decoded[name] = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video)])
        assert len(decoded[name]) == frames
    right = decoded["05_demo_side_by_side.mp4"][:, :, size:].astype(int)
    assert np.abs(right - decoded["05_demo.mp4"]).mean() < 4  # grey levels


CHECKS = {
    "01_corpus_inspection": _corpus_inspection,
    "02_audio_to_mesh": _audio_to_mesh,
    "03_pose_codebook": _pose_codebook,
    "04_mesh_to_video": _mesh_to_video,
    "05_full_pipeline": _full_pipeline,
}
