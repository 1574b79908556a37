"""``talkinghead-evaluate`` end to end on small videos built here (CPU, about a minute).

The videos are written with VideoWriter from a real face photo (scikit-image's ``astronaut``), rotated
in-plane per frame by known angles, with a synthetic AAC tone as speech. The networks are stand-ins
built in the tests: the real SyncNet, Inception v3 and (smallest) IResNet architectures with random weights —
every cell they fill is compared with the library's own computation on the same frames, not with the quality of
any model.
"""

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.linalg
import skimage.data
import torch
import torchvision

from talkinghead.audio.io import load_audio
from talkinghead.conventions import FPS, FRAME_SAMPLES
from talkinghead.evaluation import evaluate as evaluate_module
from talkinghead.evaluation.cli import main
from talkinghead.evaluation.fid import load_inception
from talkinghead.evaluation.identity import align_face, csim, identity_embeddings, load_identity_network
from talkinghead.evaluation.video_metrics import VideoAnalysis, analyse_video
from talkinghead.face.crop import crop_box, crop_image
from talkinghead.face.detection import detect_face_landmarks
from talkinghead.media import VideoWriter, iter_video_frames
from talkinghead.models.iresnet import IResNet
from talkinghead.models.syncnet import SyncNet, crop_boxes, crop_face, load_syncnet, sync_scores, syncnet_mfcc

FRAMES = 16
NA = "n/a (weights not supplied)"


def save_backbone(path) -> None:
    """A stand-in ArcFace backbone built for the test: the smallest IResNet (one block per stage, 16-d embeddings)
    with random weights and BatchNorm statistics, saved as a model-zoo state dict."""
    torch.manual_seed(5)
    network = IResNet((1, 1, 1, 1), 16)
    for module in network.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    torch.save(network.state_dict(), path)


def _face_frames(angles: np.ndarray, brighten: int = 0) -> np.ndarray:
    image = skimage.data.astronaut()
    face = crop_image(image, crop_box(detect_face_landmarks(image), image.shape[:2]))
    frames = []
    for angle in angles:
        rotation = cv2.getRotationMatrix2D((127.5, 133.0), float(angle), 1.0)
        frame = cv2.warpAffine(face, rotation, (256, 256), borderMode=cv2.BORDER_REFLECT_101)
        frames.append(np.clip(frame.astype(int) + brighten, 0, 255).astype(np.uint8))
    return np.stack(frames)


def _write(path, frames: np.ndarray, with_audio: bool = True) -> None:
    time = np.arange(len(frames) * 640) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 220 * time) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * time))
    with VideoWriter(path, audio=tone.astype(np.float32) if with_audio else None) as writer:
        writer.write(frames)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """generated/{clip, dub_seed1, dub_seed2}.mp4 and reference/{clip.mp4, dub.png}.

    ``clip`` is same-identity: its reference video shows the same frames 10 grey levels brighter. The two
    ``dub`` seeds are cross-identity and differ by a constant extra roll of 8°.
    """
    root = tmp_path_factory.mktemp("evaluation")
    generated, reference = root / "generated", root / "reference"
    generated.mkdir()
    reference.mkdir()
    angles = 6.0 * np.sin(np.arange(FRAMES) / 3.0)
    _write(generated / "clip.mp4", _face_frames(angles))
    _write(reference / "clip.mp4", _face_frames(angles, brighten=10))
    _write(generated / "dub_seed1.mp4", _face_frames(angles))
    _write(generated / "dub_seed2.mp4", _face_frames(angles + 8.0))
    cv2.imwrite(str(reference / "dub.png"), cv2.cvtColor(_face_frames([0.0])[0], cv2.COLOR_RGB2BGR))
    return root


def _rows(path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as stream:
        return {row["video"].rsplit("/", 1)[-1]: row for row in csv.DictReader(stream)}


@pytest.fixture
def analyses(monkeypatch) -> dict[str, VideoAnalysis]:
    """What the CLI's one pass over each video (``analyse_video``) yields — FaceMesh track, Inception features —
    keyed by ``folder/file``, for checking its cells against metrics computed here."""
    seen: dict[str, VideoAnalysis] = {}

    def spy(path, *args, **kwargs) -> VideoAnalysis:
        seen[f"{Path(path).parent.name}/{Path(path).name}"] = analysis = analyse_video(path, *args, **kwargs)
        return analysis

    monkeypatch.setattr(evaluate_module, "analyse_video", spy)
    return seen


def _opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip opening (FaceMesh 13–14) over the face height (10–152) per frame, image-plane distances."""
    points = landmarks[..., :2].astype(np.float64)
    return np.linalg.norm(points[:, 13] - points[:, 14], axis=-1) / np.linalg.norm(
        points[:, 10] - points[:, 152], axis=-1
    )


def _frame_rms(audio: np.ndarray, frames: int) -> np.ndarray:
    """RMS of each 40-ms (640-sample) frame of 16-kHz audio, silence past its end."""
    samples = np.zeros(frames * FRAME_SAMPLES)
    samples[: min(len(audio), len(samples))] = audio[: len(samples)]
    return np.sqrt((samples.reshape(frames, FRAME_SAMPLES) ** 2).mean(axis=1))


def _fid_by_definition(real: np.ndarray, generated: np.ndarray) -> float:
    """‖μ_r − μ_g‖² + tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^½) with scipy's ``sqrtm``, both covariances written in an
    orthonormal basis of the span of the centred features (where they live: a few frames span a few of the 2048
    dimensions), so the matrix root is of a small matrix; the traces are unchanged by the basis."""
    centred = np.concatenate([real - real.mean(0), generated - generated.mean(0)])
    basis = np.linalg.qr(centred.T)[0]  # (2048, N_r + N_g)
    sigma_r, sigma_g = (np.cov(features @ basis, rowvar=False) for features in (real, generated))
    difference = real.mean(0) - generated.mean(0)
    root = scipy.linalg.sqrtm(sigma_r @ sigma_g).real
    return float(difference @ difference + np.trace(sigma_r) + np.trace(sigma_g) - 2.0 * np.trace(root))


def test_weight_free_metrics_and_not_supplied_cells(videos, analyses, capsys):
    out = videos / "report.csv"
    code = main(
        [
            "--generated",
            str(videos / "generated"),
            "--reference",
            str(videos / "reference"),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    rows = _rows(out)
    assert set(rows) == {"clip.mp4", "dub_seed1.mp4", "dub_seed2.mp4", "mean (same-identity)", "mean (cross-identity)"}
    clip, seed1, seed2 = rows["clip.mp4"], rows["dub_seed1.mp4"], rows["dub_seed2.mp4"]
    assert (clip["setting"], seed1["setting"], seed1["seed_group"]) == ("same-identity", "cross-identity", "dub")
    for row in rows.values():
        for column in ("lse_d", "lse_c", "av_offset", "fid", "csim"):
            assert row[column] == NA
    assert int(clip["frames"]) == FRAMES and int(clip["frames_without_face"]) == 0
    # +10 grey levels everywhere: MSE ≤ 100 → PSNR ≥ 28.1 dB (clipped highlights and H.264 noise move it)
    assert 27.0 < float(clip["psnr"]) < 31.0
    assert 0.85 < float(clip["ssim"]) <= 1.0
    assert float(clip["landmark_distance"]) < 1.0  # same mouth, a brightness change only (crop pixels)
    assert float(clip["lve"]) < 0.1  # cm
    assert float(clip["hpd"]) > 0.1  # the head rolls by ±6°
    # articulation columns: the mouth never moves (opening spread ≈ landmark noise); the rolling head's eye-line
    # roll alone has the standard deviation of the ±6° sine, and head motion adds the eye and nose positions
    roll_std = float(np.std(np.radians(6.0 * np.sin(np.arange(FRAMES) / 3.0))))
    assert float(clip["mouth_open_std"]) < 0.003
    assert roll_std < float(clip["head_motion"]) < roll_std + 0.15
    # lip-sync r and mouth r computed here from the CLI's FaceMesh tracks (to the CSV's 4 decimals): the best
    # Pearson r over lags of ±2 frames between the opening and the RMS envelope of the clip's decoded speech,
    # and r / std ratio of the generated and the reference openings frame by frame
    opening, real = (_opening(analyses[key].track.landmarks) for key in ("generated/clip.mp4", "reference/clip.mp4"))
    envelope = _frame_rms(load_audio(videos / "generated" / "clip.mp4"), FRAMES)
    lagged = [
        np.corrcoef(opening[max(lag, 0) : FRAMES + min(lag, 0)], envelope[max(-lag, 0) : FRAMES - max(lag, 0)])[0, 1]
        for lag in range(-2, 3)
    ]
    assert float(clip["lip_sync_r"]) == pytest.approx(max(lagged), abs=1e-4)
    assert float(clip["mouth_r"]) == pytest.approx(np.corrcoef(opening, real)[0, 1], abs=1e-4)
    assert float(clip["mouth_amplitude_ratio"]) == pytest.approx(np.std(opening) / np.std(real), abs=1e-4)
    assert float(clip["mouth_open_std"]) == pytest.approx(np.std(opening), abs=1e-4)
    assert seed1["mouth_r"] == seed1["mouth_amplitude_ratio"] == "n/a (no reference video)"
    # the seeds differ by a constant 8° roll: mean pairwise angle distance ≈ 8°
    assert float(seed1["pose_diversity_deg"]) == pytest.approx(8.0, abs=1.0)
    assert seed1["pose_diversity_deg"] == seed2["pose_diversity_deg"]
    assert clip["pose_diversity_deg"] == "n/a (one seed)"
    assert seed1["psnr"] == "n/a (no reference video)"
    summary = rows["mean (cross-identity)"]
    assert float(summary["hpd"]) == pytest.approx((float(seed1["hpd"]) + float(seed2["hpd"])) / 2, abs=2e-4)
    tables = (videos / "report.md").read_text()
    assert "| Method | Same-Identity SyncNet ↑ | FID ↓ | CSIM ↑ | HPD ↑ | Cross-Identity SyncNet ↑" in tables
    assert f"| talkinghead | {NA} | {NA} | {NA} |" in tables
    assert tables in capsys.readouterr().out


def test_stand_in_weights_turn_na_into_numbers(tmp_path, analyses):
    """An 8-frame same-identity pair (2 SyncNet windows, 16 Inception frames) keeps the CPU time small."""
    (tmp_path / "generated").mkdir()
    (tmp_path / "reference").mkdir()
    angles = 4.0 * np.sin(np.arange(8) / 2.0)
    _write(tmp_path / "generated" / "clip.mp4", _face_frames(angles))
    _write(tmp_path / "reference" / "clip.mp4", _face_frames(angles, brighten=10))
    torch.manual_seed(0)
    syncnet = SyncNet()
    # Random towers embed lips and audio nearly orthogonally, so every offset would score ‖lip‖ (a 31-way tie at
    # the zero-padded audio past the clip's ends). One shared bias in both last layers, larger than the rest of the
    # embeddings, makes a window paired with audio score far closer than one paired with padding: offset 0, the
    # only one pairing both windows with their audio, is the unique best, and LSE-C is far from 0.
    with torch.no_grad():
        syncnet.netfcaud[-1].bias.copy_(syncnet.netfclip[-1].bias.normal_(std=2.0))
    torch.save(syncnet.state_dict(), tmp_path / "syncnet_v2.model")
    inception = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    for module in inception.modules():  # calibrate BatchNorm on one random batch so features are O(1)
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    with torch.no_grad():
        inception.train()(torch.rand(2, 3, 299, 299) * 2 - 1)
    torch.save(inception.state_dict(), tmp_path / "pt_inception.pth")
    save_backbone(tmp_path / "backbone.pth")
    out = tmp_path / "report.csv"
    code = main(
        [
            "--generated",
            str(tmp_path / "generated" / "clip.mp4"),
            "--reference",
            str(tmp_path / "reference"),
            "--syncnet-weights",
            str(tmp_path / "syncnet_v2.model"),
            "--inception-weights",
            str(tmp_path / "pt_inception.pth"),
            "--identity-weights",
            str(tmp_path / "backbone.pth"),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    rows = _rows(out)
    clip, summary = rows["clip.mp4"], rows["mean (same-identity)"]
    # SyncNet: the library's scores of face crops found here (FaceMesh on the decoded frames) with the same weights
    video = tmp_path / "generated" / "clip.mp4"
    frames = np.stack(list(iter_video_frames(video, fps=FPS)))
    boxes = crop_boxes(np.stack([detect_face_landmarks(frame) for frame in frames]))
    crops = np.stack([crop_face(frame, box) for frame, box in zip(frames, boxes, strict=True)])
    scores = sync_scores(load_syncnet(tmp_path / "syncnet_v2.model"), crops, syncnet_mfcc(load_audio(video)))
    assert float(clip["lse_d"]) == pytest.approx(scores.lse_d, abs=1e-4)
    assert float(clip["lse_c"]) == pytest.approx(scores.lse_c, abs=1e-4)
    assert int(clip["av_offset"]) == scores.offset == 0
    assert (scores.mean_distances == scores.lse_d).sum() == 1  # one best offset: LSE-C and the offset are not ties
    # CSIM: the reference video's first frame against every generated frame, each aligned from its own FaceMesh
    # landmarks, embedded by the library's network of the same weights
    identity = load_identity_network(tmp_path / "backbone.pth")
    reference_frame = next(iter_video_frames(tmp_path / "reference" / "clip.mp4", fps=FPS))
    aligned = np.stack([align_face(frame, detect_face_landmarks(frame)) for frame in [reference_frame, *frames]])
    embeddings = identity_embeddings(identity, aligned)
    assert float(clip["csim"]) == pytest.approx(csim(embeddings[0], embeddings[1:]), abs=1e-4)
    assert clip["fid"].startswith("n/a (set-level")
    # FID: the CLI's Inception features are those of the videos' frames (checked on each first frame), and the
    # summary's FID (frames 10 grey levels apart) is their Fréchet distance computed by the definition
    real, generated = (analyses[key].inception_features for key in ("reference/clip.mp4", "generated/clip.mp4"))
    assert real.shape == generated.shape == (8, 2048)
    firsts = [next(iter_video_frames(path, fps=FPS)) for path in (tmp_path / "reference" / "clip.mp4", video)]
    expected = load_inception(tmp_path / "pt_inception.pth")(torch.from_numpy(np.stack(firsts))).numpy()
    np.testing.assert_allclose(np.stack([real[0], generated[0]]), expected, rtol=1e-4, atol=1e-5)
    assert float(summary["fid"]) == pytest.approx(_fid_by_definition(real, generated), rel=1e-4, abs=1e-4)
    assert float(summary["lse_c"]) == pytest.approx(float(clip["lse_c"]), abs=1e-4)


@pytest.mark.parametrize(
    "case", ["missing", "not_a_video", "empty_folder", "weights_missing", "weights_corrupt", "no_out_folder"]
)
def test_bad_inputs_are_one_line_errors(videos, tmp_path, capsys, case):
    clip = str(videos / "generated" / "clip.mp4")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.mp4").write_text("just text")
    (tmp_path / "broken.model").write_bytes(b"PK\x03\x04 cut short")
    out = ["--out", str(tmp_path / "report.csv")]
    argv = {
        "missing": ["--generated", str(tmp_path / "absent.mp4"), *out],
        "not_a_video": ["--generated", str(tmp_path / "notes.mp4"), *out],
        "empty_folder": ["--generated", str(tmp_path / "empty"), *out],
        "weights_missing": ["--generated", clip, "--syncnet-weights", str(tmp_path / "absent.model"), *out],
        "weights_corrupt": ["--generated", clip, "--inception-weights", str(tmp_path / "broken.model"), *out],
        "no_out_folder": ["--generated", clip, "--out", str(tmp_path / "absent" / "report.csv")],
    }[case]
    assert main([*argv, "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("talkinghead-evaluate: error: ") and "\n" not in error
    assert not (tmp_path / "report.csv").exists()


def test_module_entry_point_reports_errors_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "talkinghead.evaluation.cli", "--generated", str(tmp_path / "absent.mp4")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"talkinghead-evaluate: error: --generated {str(tmp_path / 'absent.mp4')!r}: no such file"
    ]


def test_only_seed_files_of_one_folder_form_a_seed_group(videos, tmp_path):
    """Two unrelated ``x.mp4`` in different folders, and ``y_seed1`` / ``y_seed2`` split over two folders: no group."""
    (tmp_path / "r1").mkdir()
    (tmp_path / "r2").mkdir()
    paths = [str(tmp_path / name) for name in ("r1/x.mp4", "r1/y_seed1.mp4", "r2/x.mp4", "r2/y_seed2.mp4")]
    for path, source in zip(paths, ("dub_seed1.mp4", "dub_seed1.mp4", "dub_seed2.mp4", "dub_seed2.mp4"), strict=True):
        shutil.copy(videos / "generated" / source, path)
    out = tmp_path / "report.csv"
    assert main(["--generated", *paths, "--out", str(out), "--quiet"]) == 0
    with open(out, newline="") as stream:
        rows = [row for row in csv.DictReader(stream) if not row["video"].startswith("mean")]
    assert [(row["video"], row["seed_group"], row["pose_diversity_deg"]) for row in rows] == [
        (paths[0], "", "n/a (one seed)"),
        (paths[1], "y", "n/a (one seed)"),
        (paths[2], "", "n/a (one seed)"),
        (paths[3], "y", "n/a (one seed)"),
    ]


@pytest.mark.parametrize("spelling", ["same", "other"])
def test_a_video_given_twice_is_a_one_line_error(videos, tmp_path, capsys, spelling):
    clip = str(videos / "generated" / "clip.mp4")
    again = clip if spelling == "same" else str(videos / "generated" / ".." / "generated" / "clip.mp4")
    out = tmp_path / "report.csv"
    assert main(["--generated", clip, again, "--out", str(out), "--quiet"]) == 2
    problem = "given twice" if spelling == "same" else f"the same file as {clip!r}"
    assert capsys.readouterr().err.splitlines() == [f"talkinghead-evaluate: error: --generated {again!r}: {problem}"]
    assert not out.exists()


def test_a_seed_given_twice_in_one_group_is_a_one_line_error(videos, tmp_path, capsys):
    paths = [str(tmp_path / name) for name in ("y_seed1.mp4", "y.seed1.mp4")]
    for path in paths:
        shutil.copy(videos / "generated" / "dub_seed1.mp4", path)
    assert main(["--generated", *paths, "--out", str(tmp_path / "report.csv"), "--quiet"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"talkinghead-evaluate: error: --generated {paths[1]!r}: seed 1 of 'y' again (also y_seed1.mp4)"
    ]
    assert not (tmp_path / "report.csv").exists()


def test_device_is_cpu_or_cuda(videos, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--generated", str(videos / "generated" / "clip.mp4"), "--device", "foo"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "talkinghead-evaluate: error: argument --device: invalid choice: 'foo' (choose from 'cpu', 'cuda')"
    )


def test_device_cuda_without_cuda_is_a_one_line_error(videos, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    torch.save(SyncNet().state_dict(), tmp_path / "syncnet_v2.model")
    out = tmp_path / "report.csv"
    argv = ["--generated", str(videos / "generated" / "clip.mp4"), "--device", "cuda", "--out", str(out)]
    assert main([*argv, "--syncnet-weights", str(tmp_path / "syncnet_v2.model"), "--quiet"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "talkinghead-evaluate: error: --device cuda: CUDA is not available on this machine"
    ]
    assert not out.exists()
