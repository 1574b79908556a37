"""Head-pose metrics (pure functions). Poses are (..., T, 6): (pitch, yaw, roll) in radians, (tx, ty, tz) in cm.

* :func:`head_pose_diversity` — HPD of VividTalk §4.1, "the variance of the norm of head pose in the Euler
  angle representation": per sequence, the (population) variance over time of ‖(pitch, yaw, roll)‖, with the
  angles in **degrees** (so HPD is in deg²).
* :func:`pose_errors` — mean per-frame L2 error of the angles (degrees) and of the translation (cm).
* :func:`seed_diversity` — mean pairwise distance between sequences generated from the same input with
  different seeds (per-frame L2, averaged over frames and pairs), angles in degrees and translation in cm.
* :func:`mean_jerk` — smoothness: mean magnitude of the third finite difference over frames
  (degrees / frame³ and cm / frame³; multiply by fps³ for per-second units).
"""

import math

import torch


def _split(pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rad2deg(pose[..., :3]), pose[..., 3:]


def head_pose_diversity(pose: torch.Tensor) -> torch.Tensor:
    """HPD (deg²): pose (..., T, 6) → (...,) = Var_t ‖(pitch, yaw, roll)_t‖ in degrees (population variance)."""
    norm = _split(pose)[0].norm(dim=-1)  # (..., T)
    return norm.var(dim=-1, unbiased=False)


def pose_errors(predicted: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., T, 6) × 2 → (angle error in degrees, translation error in cm), each (...,) averaged over frames."""
    angles_hat, translation_hat = _split(predicted)
    angles, translation = _split(target)
    return (angles_hat - angles).norm(dim=-1).mean(-1), (translation_hat - translation).norm(dim=-1).mean(-1)


def seed_diversity(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences from S seeds (S, ..., T, 6), S ≥ 2 → mean pairwise (degrees, cm) distance, each (...,)."""
    count = samples.shape[0]
    if count < 2:
        raise ValueError(f"diversity needs at least two samples, got {count}")
    angles, translation = _split(samples)
    pairs = [(i, j) for i in range(count) for j in range(i + 1, count)]
    angle = sum((angles[i] - angles[j]).norm(dim=-1).mean(-1) for i, j in pairs) / len(pairs)
    shift = sum((translation[i] - translation[j]).norm(dim=-1).mean(-1) for i, j in pairs) / len(pairs)
    return angle, shift


def mean_jerk(pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., T, 6), T ≥ 4 → mean ‖Δ³‖ of the angles (deg/frame³) and translation (cm/frame³), each (...,)."""
    if pose.shape[-2] < 4:
        return (pose.new_full(pose.shape[:-2], math.nan),) * 2
    angles, translation = _split(pose)
    jerk = lambda x: torch.diff(x, n=3, dim=-2).norm(dim=-1).mean(-1)  # noqa: E731
    return jerk(angles), jerk(translation)
