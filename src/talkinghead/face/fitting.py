"""Fit the morphable model to 2-D landmarks: pose P, identity α and expression β (§3.1).

The paper reconstructs α, β and P with FaceVerse's fitting [32]; here the built-in model's vertices
*are* MediaPipe FaceMesh landmarks, so fitting is a direct, batched reprojection problem::

    min_{P, α, β∈[0,1]}  Σ_i w_i ‖π(R (S̄ + α U_id + β U_exp)_i + t) − l_i‖² + λ_α‖α‖² + λ_β‖β‖²

with π the crop camera (:class:`~talkinghead.face.camera.PerspectiveCamera`). The pose starts from a
similarity Procrustes alignment (Umeyama) of the mean shape to MediaPipe's 3-D landmarks when given, or
to the 2-D landmarks lifted at the mean depth otherwise; then Adam refines all parameters jointly,
projecting β onto [0, 1] after every step. ``share_alpha`` fits one α for a whole clip.
"""

from dataclasses import dataclass

import torch

from talkinghead.face.camera import PerspectiveCamera
from talkinghead.face.morphable_model import MorphableModel
from talkinghead.face.pose import apply_pose, matrix_to_pose


@dataclass
class FitResult:
    alpha: torch.Tensor  # (B, K_id), or (1, K_id) broadcast when share_alpha
    beta: torch.Tensor  # (B, K_exp) in [0, 1]
    pose: torch.Tensor  # (B, 6)
    residual: torch.Tensor  # (B,) root-mean-square reprojection error in pixels


def similarity_procrustes(
    source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted Umeyama alignment ``target ≈ s·R·source + t`` for (B, N, 3) point sets.

    Returns scale (B,), rotation (B, 3, 3) with det = +1, translation (B, 3).
    """
    if weights is None:
        weights = torch.ones(source.shape[-2], dtype=source.dtype, device=source.device)
    w = (weights / weights.sum())[:, None]
    mu_s, mu_t = (w * source).sum(-2), (w * target).sum(-2)
    xs, xt = source - mu_s[:, None], target - mu_t[:, None]
    covariance = (w * xt).transpose(-1, -2) @ xs
    u, sigma, vh = torch.linalg.svd(covariance)
    sign = torch.ones_like(sigma)
    sign[:, -1] = torch.sign(torch.linalg.det(u @ vh))
    rotation = u @ torch.diag_embed(sign) @ vh
    scale = (sigma * sign).sum(-1) / (w * xs.square()).sum((-2, -1))
    translation = mu_t - scale[:, None] * (rotation @ mu_s[..., None]).squeeze(-1)
    return scale, rotation, translation


def initial_pose(
    model: MorphableModel,
    landmarks: torch.Tensor,
    camera: PerspectiveCamera,
    depth: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pose (B, 6) aligning the mean shape to landmarks (B, N, 2) in crop pixels.

    ``depth`` (B, N) is MediaPipe's relative z in pixels (smaller = nearer); without it the landmarks
    are lifted to the mean shape's depth at the 2-D similarity scale, which starts the rotation near frontal.
    """
    mean = model.mean_shape[model.landmark_ids].to(landmarks.dtype).expand(landmarks.shape[0], -1, -1)
    if depth is None:
        flat_mean = mean * torch.tensor([1.0, 1.0, 0.0], dtype=mean.dtype)
        flat_target = torch.stack((landmarks[..., 0], -landmarks[..., 1], torch.zeros_like(landmarks[..., 0])), -1)
        scale, _, _ = similarity_procrustes(flat_mean, flat_target, weights)
        depth = -scale[:, None] * mean[..., 2]
    target = torch.stack((landmarks[..., 0], -landmarks[..., 1], -depth), dim=-1)
    scale, rotation, translation = similarity_procrustes(mean, target, weights)
    z = camera.distance - camera.focal / scale
    half = camera.image_size / 2.0
    x = (translation[:, 0] - half) * (camera.distance - z) / camera.focal
    y = (translation[:, 1] + half) * (camera.distance - z) / camera.focal
    return matrix_to_pose(rotation, torch.stack((x, y, z), dim=-1))


def fit_landmarks(
    model: MorphableModel,
    landmarks: torch.Tensor,
    camera: PerspectiveCamera,
    depth: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
    share_alpha: bool = False,
    fit_expression: bool = True,
    alpha_reg: float = 1e-3,
    beta_reg: float = 1e-4,
    steps: int = 300,
    lr: float = 0.02,
) -> FitResult:
    """Fit P, α, β to landmarks (B, N, 2) of ``model.landmark_ids`` (see module docstring)."""
    batch = landmarks.shape[0]
    landmarks = landmarks.float()
    pose = initial_pose(model, landmarks, camera, depth, weights).detach().requires_grad_(True)
    alpha = torch.zeros(1 if share_alpha else batch, model.num_identity, requires_grad=True)
    beta = torch.zeros(batch, model.num_expression, requires_grad=fit_expression)
    w = torch.ones(landmarks.shape[1]) if weights is None else weights.float()
    w = w / w.mean()
    parameters = [pose, alpha] + ([beta] if fit_expression else [])
    optimizer = torch.optim.Adam(parameters, lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)

    def reprojection() -> torch.Tensor:
        vertices = model.vertices(alpha.expand(batch, -1), beta)[:, model.landmark_ids]
        projected = camera.project(apply_pose(vertices, pose))[..., :2]
        return (w[:, None] * (projected - landmarks).square()).sum(-1).mean(-1)

    for _ in range(steps):
        optimizer.zero_grad()
        loss = reprojection().sum() + alpha_reg * alpha.square().sum() + beta_reg * beta.square().sum()
        loss.backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            beta.clamp_(0.0, 1.0)
    with torch.no_grad():
        residual = reprojection().sqrt()
    return FitResult(alpha.detach().expand(batch, -1), beta.detach(), pose.detach(), residual)
