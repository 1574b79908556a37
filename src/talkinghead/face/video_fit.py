"""The morphable-model fit of one tracked face clip, shared by the preprocessing tool and ``--pose video``.

A clip's FaceMesh landmarks (478, source pixels) are moved into its fixed 256² crop
(:func:`talkinghead.face.clip_crop.clip_crop_box`) and fitted in closed form
(:func:`talkinghead.face.fitting.fit_sequence`) with the crop camera and :data:`VIDEO_FIT`: the pose
smoothed by a Gaussian of σ = 1 frame (landmark jitter), β and O_lip (the lip residual) not smoothed, so
the fitted mouth keeps the tracked opening's fast motion (``mouth_fit_r`` in docs/PREPROCESSING.md).
"""

from dataclasses import dataclass

import numpy as np
import torch

from talkinghead.face.builtin import builtin_identity_std
from talkinghead.face.camera import PerspectiveCamera
from talkinghead.face.canonical_mesh import NUM_VERTICES
from talkinghead.face.clip_crop import clip_crop_box, to_crop
from talkinghead.face.fitting import SequenceFit, SequenceFitConfig, fit_sequence, mediapipe_landmarks_for
from talkinghead.face.morphable_model import MorphableModel

VIDEO_FIT = SequenceFitConfig(smooth_sigma=1.0, smooth_beta=False)
BUILTIN_LANDMARKS = NUM_VERTICES  # the built-in model's landmarks are its vertices, FaceMesh's 468 points


@dataclass
class TrackedClipFit:
    box: tuple[int, int, int]  # (x0, y0, side) in source pixels, one for the clip
    landmarks: np.ndarray  # (T, 478, 3) in crop pixels
    observed: torch.Tensor  # (T, K, 3) the landmarks of the model's landmark ids, crop pixels
    fit: SequenceFit


def identity_prior(model: MorphableModel) -> torch.Tensor | None:
    """The α prior's standard deviations: the built-in model's, or ``None`` (unit) for other models."""
    return builtin_identity_std(model.num_identity) if model.landmark_ids.numel() == BUILTIN_LANDMARKS else None


def fit_tracked_clip(
    model: MorphableModel,
    landmarks: np.ndarray,
    camera: PerspectiveCamera,
    config: SequenceFitConfig = VIDEO_FIT,
) -> TrackedClipFit:
    """Crop and fit one clip of tracked landmarks (T, 478, 3) in source pixels (module docstring)."""
    box = clip_crop_box(landmarks)
    cropped = to_crop(landmarks, box)
    observed = mediapipe_landmarks_for(model, torch.from_numpy(cropped))
    fit = fit_sequence(
        model, observed[..., :2], camera, depth=observed[..., 2], alpha_std=identity_prior(model), config=config
    )
    return TrackedClipFit(box, cropped, observed, fit)
