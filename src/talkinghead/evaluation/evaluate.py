"""Evaluate generated talking-head videos: VividTalk's Table 1 metrics (§4.1) plus weight-free ones.

Inputs (see docs/EVALUATION.md):

* generated videos, a folder (every ``.mp4 .mov .mkv .avi .webm`` in it) or a list of files;
* optionally a reference folder. For a generated ``NAME.mp4`` (or ``NAME_seed3.mp4``, see below) it may
  hold ``NAME.<video ext>``, the real video of the same clip (same-identity reconstruction: FID, PSNR/SSIM,
  LMD and LVE against it, and its first face frame is the CSIM reference unless a photo is given), and/or
  ``NAME.<png|jpg|jpeg|bmp|webp>``, the portrait the video was generated from (CSIM reference). A video
  with no reference video is cross-identity (dubbing).
* Seed groups: ``NAME_seedN`` / ``NAME-seedN`` / ``NAME.seedN`` (N digits) in one folder are videos of the
  same input generated with different seeds; a group of two or more gets the pose seed diversity
  (:func:`talkinghead.metrics.pose.seed_diversity` of the estimated pose sequences, cut to the shortest).
  Files without such a suffix, and files in different folders, are never grouped. References are looked up
  under the full stem first, then under ``NAME``.
"""

import re
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from talkinghead.audio.io import AudioError, load_audio
from talkinghead.conventions import FPS, IMAGE_SUFFIXES, VIDEO_SUFFIXES
from talkinghead.evaluation.fid import InceptionFeatures, fid_from_features
from talkinghead.evaluation.identity import csim
from talkinghead.evaluation.report import CROSS, SAME, SET_LEVEL, Row
from talkinghead.evaluation.video_metrics import (
    VideoAnalysis,
    analyse_video,
    fitted_lip_vertex_error,
    frame_quality,
    mouth_distance,
    reference_identity,
)
from talkinghead.face.detection import NoFaceError
from talkinghead.face.images import load_image_rgb
from talkinghead.media import iter_video_frames, probe_video
from talkinghead.metrics.articulation import (
    head_motion,
    inner_lip_opening,
    lip_sync_r,
    opening_agreement,
    speech_envelope,
)
from talkinghead.metrics.pose import head_pose_diversity, seed_diversity
from talkinghead.models.syncnet import SyncNetwork, crop_boxes, crop_face, sync_scores, syncnet_mfcc
from talkinghead.models.weights import NOT_SUPPLIED

SEED_PATTERN = re.compile(r"^(?P<name>.+?)[._-]seed(?P<seed>\d+)$")
NO_FACE = "n/a (no face found)"
NO_REFERENCE_VIDEO = "n/a (no reference video)"


@dataclass(frozen=True)
class VideoJob:
    """One generated video with what it is compared with."""

    path: Path
    group: str | None  # NAME of a ``NAME_seedN`` file, None for a file without a seed suffix
    seed: int | None
    reference_video: Path | None
    reference_image: Path | None

    @property
    def setting(self) -> str:
        return SAME if self.reference_video is not None else CROSS

    @property
    def seed_group(self) -> tuple[Path, str] | None:
        """What the seed groups are keyed by: the folder and ``NAME``; None for a file without a seed suffix."""
        return None if self.group is None else (self.path.parent.resolve(), self.group)


@dataclass
class Networks:
    """The user-supplied networks; ``None`` where the weights were not given."""

    syncnet: SyncNetwork | None = None
    inception: InceptionFeatures | None = None
    identity: object | None = None
    device: str = "cpu"


def _find(folder: Path | None, stems: list[str], suffixes: tuple[str, ...]) -> Path | None:
    if folder is None:
        return None
    for stem in stems:
        for suffix in suffixes:
            for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
                if candidate.is_file():
                    return candidate
    return None


def collect_jobs(generated: list[str], reference: str | None = None) -> list[VideoJob]:
    """Resolve the CLI's inputs (module docstring); ``ValueError`` with one line for a missing path or a file
    given twice."""
    if len(generated) == 1 and Path(generated[0]).is_dir():
        folder = Path(generated[0])
        paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        if not paths:
            raise ValueError(f"--generated {str(folder)!r}: no videos ({', '.join(VIDEO_SUFFIXES)}) in the folder")
    else:
        paths = [Path(p) for p in generated]
        for path in paths:
            if not path.is_file():
                problem = "a folder (give one folder, or only files)" if path.is_dir() else "no such file"
                raise ValueError(f"--generated {str(path)!r}: {problem}")
        seen: dict[Path, Path] = {}
        for path in paths:
            first = seen.setdefault(path.resolve(), path)
            if first is not path:
                problem = "given twice" if first == path else f"the same file as {str(first)!r}"
                raise ValueError(f"--generated {str(path)!r}: {problem}")
    folder = None if reference is None else Path(reference)
    if folder is not None and not folder.is_dir():
        raise ValueError(f"--reference {str(folder)!r}: not a folder")
    jobs = []
    for path in paths:
        match = SEED_PATTERN.match(path.stem)
        group, seed = (match["name"], int(match["seed"])) if match else (None, None)
        stems = [path.stem] + ([group] if match else [])
        reference_video = _find(folder, stems, VIDEO_SUFFIXES)
        if reference_video is not None and reference_video.resolve() == path.resolve():
            reference_video = None
        jobs.append(VideoJob(path, group, seed, reference_video, _find(folder, stems, IMAGE_SUFFIXES)))
    seeds: dict[tuple, Path] = {}
    for job in jobs:
        if job.seed_group is not None:
            first = seeds.setdefault((*job.seed_group, job.seed), job.path)
            if first is not job.path:
                problem = f"seed {job.seed} of {job.group!r} again (also {first.name})"
                raise ValueError(f"--generated {str(job.path)!r}: {problem}")
    return jobs


def check_videos(jobs: list[VideoJob]) -> None:
    """Probe every video up front so a bad file fails before any long computation (VideoError)."""
    for job in jobs:
        probe_video(job.path)
        if job.reference_video is not None:
            probe_video(job.reference_video)


def _sync(job: VideoJob, analysis: VideoAnalysis, networks: Networks) -> dict[str, object]:
    if networks.syncnet is None:
        return dict.fromkeys(("lse_d", "lse_c", "av_offset"), NOT_SUPPLIED)
    if not analysis.track.has_face:
        return dict.fromkeys(("lse_d", "lse_c", "av_offset"), NO_FACE)
    try:
        audio = load_audio(job.path)
    except AudioError as error:
        reason = f"n/a ({str(error).split(': ', 1)[-1]})"
        return dict.fromkeys(("lse_d", "lse_c", "av_offset"), reason)
    boxes = crop_boxes(analysis.track.landmarks)
    frames = iter_video_frames(job.path, fps=FPS)
    crops = np.stack([crop_face(frame, boxes[index]) for index, frame in enumerate(islice(frames, len(boxes)))])
    try:
        scores = sync_scores(networks.syncnet, crops, syncnet_mfcc(audio), device=networks.device)
    except ValueError as error:
        return dict.fromkeys(("lse_d", "lse_c", "av_offset"), f"n/a ({error})")
    return {"lse_d": scores.lse_d, "lse_c": scores.lse_c, "av_offset": scores.offset}


def _articulation(job: VideoJob, analysis: VideoAnalysis, reference: VideoAnalysis | None) -> dict[str, object]:
    """Weight-free mouth and head measurements (:mod:`talkinghead.metrics.articulation`)."""
    keys = ("mouth_open_std", "lip_sync_r", "head_motion", "mouth_r", "mouth_amplitude_ratio")
    if not analysis.track.has_face:
        return dict.fromkeys(keys, NO_FACE)
    opening = inner_lip_opening(analysis.track.landmarks)
    row: dict[str, object] = {
        "mouth_open_std": float(np.std(opening)),
        "head_motion": head_motion(analysis.track.landmarks),
    }
    try:
        row["lip_sync_r"] = lip_sync_r(opening, speech_envelope(load_audio(job.path), len(opening)))
    except AudioError as error:
        row["lip_sync_r"] = f"n/a ({str(error).split(': ', 1)[-1]})"
    if reference is None:
        return row | dict.fromkeys(("mouth_r", "mouth_amplitude_ratio"), NO_REFERENCE_VIDEO)
    if not reference.track.has_face:
        return row | dict.fromkeys(("mouth_r", "mouth_amplitude_ratio"), NO_FACE)
    agreement = opening_agreement(opening, inner_lip_opening(reference.track.landmarks))
    return row | dict(zip(("mouth_r", "mouth_amplitude_ratio"), agreement, strict=True))


def _csim(job: VideoJob, analysis: VideoAnalysis, reference: VideoAnalysis | None, networks: Networks) -> object:
    if networks.identity is None:
        return NOT_SUPPLIED
    if analysis.identity is None:
        return NO_FACE
    if job.reference_image is not None:
        try:
            target = reference_identity(load_image_rgb(job.reference_image), networks.identity)
        except NoFaceError:
            return "n/a (no face in the reference image)"
        return csim(target, analysis.identity)
    if reference is not None:
        return csim(reference.identity[0], analysis.identity) if reference.identity is not None else NO_FACE
    return "n/a (no reference image)"


def _against_reference(job: VideoJob, analysis: VideoAnalysis, reference: VideoAnalysis | None) -> dict[str, object]:
    keys = ("landmark_distance", "lve", "psnr", "ssim")
    if reference is None:
        return dict.fromkeys(keys, NO_REFERENCE_VIDEO)
    row: dict[str, object] = dict(zip(("psnr", "ssim"), frame_quality(job.path, reference.path), strict=True))
    if not (analysis.track.has_face and reference.track.has_face):
        return row | dict.fromkeys(("landmark_distance", "lve"), NO_FACE)
    return row | {
        "landmark_distance": mouth_distance(analysis, reference),
        "lve": fitted_lip_vertex_error(analysis, reference),
    }


def evaluate(jobs: list[VideoJob], networks: Networks, progress: bool = True) -> tuple[list[Row], dict[str, object]]:
    """Per-video rows and the FID per setting (value or ``n/a`` text), see the report module for the layout."""
    references: dict[Path, VideoAnalysis] = {}
    rows: list[Row] = []
    poses: dict[tuple[Path, str], list[tuple[int, torch.Tensor]]] = {}
    features: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {SAME: ([], []), CROSS: ([], [])}
    for job in tqdm(jobs, desc="evaluating", unit="video", disable=not progress):
        analysis = analyse_video(job.path, networks.inception, networks.identity)
        reference = None
        if job.reference_video is not None:
            if job.reference_video not in references:
                references[job.reference_video] = analyse_video(
                    job.reference_video, networks.inception, networks.identity
                )
                if networks.inception is not None:
                    features[job.setting][0].append(references[job.reference_video].inception_features)
            reference = references[job.reference_video]
        if networks.inception is not None:
            features[job.setting][1].append(analysis.inception_features)
        row: Row = {
            "video": str(job.path),
            "setting": job.setting,
            "seed_group": job.group or "",
            "reference_video": str(job.reference_video or ""),
            "reference_image": str(job.reference_image or ""),
            "frames": analysis.track.num_frames,
            "frames_without_face": int((~analysis.track.found).sum()),
            "fid": NOT_SUPPLIED if networks.inception is None else SET_LEVEL,
        }
        row |= _sync(job, analysis, networks)
        row["csim"] = _csim(job, analysis, reference, networks)
        if analysis.track.has_face:
            pose = analysis.fit().pose
            row["hpd"] = float(head_pose_diversity(pose))
            if job.seed_group is not None:
                poses.setdefault(job.seed_group, []).append((len(rows), pose))
        else:
            row["hpd"] = NO_FACE
        row |= _against_reference(job, analysis, reference)
        row |= _articulation(job, analysis, reference)
        rows.append(row)
    _seed_diversity(rows, poses)
    return rows, _fid(features, networks)


def _seed_diversity(rows: list[Row], poses: dict[tuple[Path, str], list[tuple[int, torch.Tensor]]]) -> None:
    for row in rows:
        row["pose_diversity_deg"] = row["pose_diversity_cm"] = "n/a (one seed)"
    for members in poses.values():
        if len(members) < 2:
            continue
        length = min(len(pose) for _, pose in members)
        angle, shift = seed_diversity(torch.stack([pose[:length] for _, pose in members]))
        for index, _ in members:
            rows[index]["pose_diversity_deg"], rows[index]["pose_diversity_cm"] = float(angle), float(shift)


def _fid(features: dict[str, tuple[list[np.ndarray], list[np.ndarray]]], networks: Networks) -> dict[str, object]:
    if networks.inception is None:
        return {SAME: NOT_SUPPLIED, CROSS: NOT_SUPPLIED}
    result: dict[str, object] = {CROSS: NO_REFERENCE_VIDEO}
    real, generated = features[SAME]
    if real and generated:
        result[SAME] = fid_from_features(np.concatenate(real), np.concatenate(generated))
    return result
