"""Fit the morphable model to 2-D landmarks: pose P, identity α and expression β (§3.1).

The paper reconstructs α, β and P with FaceVerse's fitting [32]; here the built-in model's vertices
*are* MediaPipe FaceMesh landmarks, so fitting is a direct, batched reprojection problem::

    min_{P, α, β∈[0,1]}  Σ_i w_i ‖π(R (S̄ + α U_id + β U_exp)_i + t) − l_i‖² + λ_α‖α‖² + λ_β‖β‖²

with π the crop camera (:class:`~talkinghead.face.camera.PerspectiveCamera`). The pose starts from a
similarity Procrustes alignment (Umeyama) of the mean shape to MediaPipe's 3-D landmarks when given, or
to the 2-D landmarks lifted at the mean depth otherwise; then Adam refines all parameters jointly,
projecting β onto [0, 1] after every step. ``share_alpha`` fits one α for a whole clip.

:func:`fit_sequence` is the closed-form, batched counterpart for video clips (the preprocessing tool's fit,
§4.1: "3DMM coefficients per frame"): no gradient descent, every step an exact solve for all frames at once.

1. *Pose* per frame by weighted Procrustes on the rigid landmarks, made perspective-exact by iteration:
   each landmark is unprojected along its camera ray to the depth of its current model vertex, the model
   is similarity-aligned to those 3-D points (Umeyama), and the similarity's scale is turned into depth
   by moving the head along the ray through the camera centre (scaling about the centre leaves the
   projection unchanged). Rigidity weights come from the expression basis (:func:`rigid_weights`).
2. *Identity* α, one per clip: ridge least squares over all frames with the prior ``α ~ N(0, σ²)``.
3. *Expression* β per frame: ``min ‖J β − r‖² + λ‖β‖²`` subject to ``0 ≤ β ≤ 1`` (bounded, regularised
   least squares), solved by accelerated projected gradient (FISTA) on the 52 × 52 normal equations.
4. Steps 1–3 alternate (:attr:`SequenceFitConfig.iterations` rounds); optional Gaussian smoothing over time
   of pose (and of β unless :attr:`SequenceFitConfig.smooth_beta` is off); then O_lip is the lip landmarks'
   residual ("the part of the lip vertices that blendshapes do not explain"): the image-plane miss at the
   vertex's depth, rotated into the model frame, never smoothed.

Residuals are weighted by ``(f / depth)²``, so every λ is in pixels² of the 256² crop.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias

from talkinghead.face.camera import PerspectiveCamera
from talkinghead.face.canonical_mesh import NUM_VERTICES
from talkinghead.face.morphable_model import MorphableModel
from talkinghead.face.pose import apply_pose, matrix_to_pose, pose_to_matrix


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


MEDIAPIPE_IBUG68 = (
    127, 234, 93, 132, 58, 172, 136, 150, 152, 379, 365, 397, 288, 361, 323, 454, 356,  # jaw 0–16
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,  # brows 17–26
    168, 197, 5, 4, 75, 97, 2, 326, 305,  # nose 27–35
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,  # eyes 36–47
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,  # outer lips 48–59
    78, 81, 13, 311, 308, 402, 14, 178,  # inner lips 60–67
)  # fmt: skip
"""The MediaPipe FaceMesh landmark nearest to each of the 68 iBUG/dlib points (FaceVerse's ``keypoints``),
so a FaceVerse model is fitted to that subset of the tracked landmarks."""


def mediapipe_landmarks_for(model: MorphableModel, landmarks: torch.Tensor) -> torch.Tensor:
    """The columns of MediaPipe landmarks (..., 468 or 478, C) that observe ``model.landmark_ids``.

    The built-in model's 468 landmarks are the FaceMesh landmarks themselves (iris points dropped); a model
    with 68 landmark ids (FaceVerse) gets :data:`MEDIAPIPE_IBUG68`. Other landmark sets raise ``ValueError``.
    """
    count = model.landmark_ids.numel()
    if count == NUM_VERTICES:
        return landmarks[..., :NUM_VERTICES, :]
    if count == 68:
        return landmarks[..., list(MEDIAPIPE_IBUG68), :]
    raise ValueError(f"no MediaPipe correspondence for a model with {count} landmarks ({NUM_VERTICES} or 68 supported)")


def mediapipe_ids_for(model: MorphableModel) -> tuple[int, ...]:
    """The MediaPipe landmark index of each column :func:`mediapipe_landmarks_for` returns (same rules)."""
    count = model.landmark_ids.numel()
    if count == NUM_VERTICES:
        return tuple(range(NUM_VERTICES))
    if count == 68:
        return MEDIAPIPE_IBUG68
    raise ValueError(f"no MediaPipe correspondence for a model with {count} landmarks ({NUM_VERTICES} or 68 supported)")


def rigid_weights(model: MorphableModel, scale: float = 0.1) -> torch.Tensor:
    """Procrustes weight of each landmark (N,): ``1 / (1 + (m / scale)²)``, m = the largest displacement (cm)
    any single blendshape gives the landmark's vertex at weight 1.

    Landmarks no expression moves (nose bridge, forehead, temples) weigh 1; lips, jaw, lids and brows,
    which blendshapes move by 0.3–2 cm, weigh 0.1 to 0.003. Derived from the basis, so it serves any model.
    """
    motion = model.expression_basis[:, model.landmark_ids].norm(dim=-1).amax(0)
    return 1.0 / (1.0 + (motion / scale).square())


@dataclass(frozen=True)
class SequenceFitConfig:
    """Settings of :func:`fit_sequence` (defaults tuned on the synthetic round trip, docs/PREPROCESSING.md).

    The priors are strong on purpose: MediaPipe's landmarks and the built-in mesh disagree by about 1 px
    RMS on a neutral face, and weak priors let α and pairs of opposing blendshapes (e.g.
    ``mouthLowerDown`` against ``mouthRollLower``) absorb that mismatch. ``alpha_reg`` 3000 and ``beta_reg``
    300 gave the best β and identity on the preprocessing round trip (``tests/test_preprocess.py``;
    docs/PREPROCESSING.md lists the sweep); lower them for clean, model-generated landmarks.

    Attributes:
        iterations: rounds of pose → α → β.
        pose_iterations: perspective Procrustes refinements per round.
        alpha_reg: weight (px²) of the prior ``‖α / σ‖²`` against the whole clip's landmark error.
        beta_reg: weight (px²) of ``‖β‖²`` against one frame's landmark error.
        beta_steps: FISTA iterations of the bounded β solve per round.
        smooth_sigma: Gaussian σ in frames for pose and β over time (0: off).
        smooth_beta: smooth β too (off: only the pose; smoothing β by σ = 1 frame flattens fast mouth
            motion, lowering the β-only inner-lip opening's r with the tracked one from 0.97 to 0.93 on
            the preprocessing round trip).
        rigid_scale: ``scale`` of :func:`rigid_weights` (cm).
        chunk: frames per batch of the linear solves (bounds memory on long clips).
    """

    iterations: int = 4
    pose_iterations: int = 3
    alpha_reg: float = 3000.0
    beta_reg: float = 300.0
    beta_steps: int = 150
    smooth_sigma: float = 0.0
    smooth_beta: bool = True
    rigid_scale: float = 0.1
    chunk: int = 256


@dataclass
class SequenceFit:
    alpha: torch.Tensor  # (K_id,), one identity per clip
    beta: torch.Tensor  # (T, K_exp) in [0, 1]
    pose: torch.Tensor  # (T, 6)
    lip_offsets: torch.Tensor  # (T, L, 3) O_lip in the model frame, cm
    residual: torch.Tensor  # (T,) RMS reprojection error (px) of α, β, P and O_lip over all landmarks
    residual_without_lips: torch.Tensor  # (T,) the same without O_lip (how much blendshapes explain)


def _unproject_xy(landmarks: torch.Tensor, depth: torch.Tensor, camera: PerspectiveCamera) -> torch.Tensor:
    """World (x, y) of pixels (..., N, 2) at camera depths (..., N)."""
    half = camera.image_size / 2.0
    x = (landmarks[..., 0] - half) * depth / camera.focal
    y = -(landmarks[..., 1] - half) * depth / camera.focal
    return torch.stack((x, y), dim=-1)


def _perspective_procrustes(
    shape: torch.Tensor,
    landmarks: torch.Tensor,
    rotation: torch.Tensor,
    translation: torch.Tensor,
    camera: PerspectiveCamera,
    weights: torch.Tensor,
    iterations: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted Procrustes of shapes (T, N, 3) onto landmarks (T, N, 2) unprojected at the model depths."""
    centre = torch.tensor([0.0, 0.0, camera.distance], dtype=shape.dtype)
    for _ in range(iterations):
        posed = shape @ rotation.transpose(-1, -2) + translation[:, None]
        target = torch.cat((_unproject_xy(landmarks, camera.distance - posed[..., 2], camera), posed[..., 2:]), -1)
        scale, rotation, shifted = similarity_procrustes(shape, target, weights)
        translation = centre + (shifted - centre) / scale[:, None]
    return rotation, translation


def _skew(vectors: torch.Tensor) -> torch.Tensor:
    """(..., 3) → cross-product matrices (..., 3, 3)."""
    x, y, z = vectors.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack((zero, -z, y, z, zero, -x, -y, x, zero), -1).unflatten(-1, (3, 3))


def _projection_jacobian(posed: torch.Tensor, camera: PerspectiveCamera) -> torch.Tensor:
    """d(u, v)/d(x, y, z) of the camera projection at world points (..., N, 3) → (..., N, 2, 3)."""
    depth = camera.distance - posed[..., 2]
    scale = camera.focal / depth
    zero = torch.zeros_like(depth)
    return torch.stack((
        torch.stack((scale, zero, scale * posed[..., 0] / depth), -1),
        torch.stack((zero, -scale, -scale * posed[..., 1] / depth), -1),
    ), -2)  # fmt: skip


def _gauss_newton_pose_alpha(
    model_parts: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    landmarks: torch.Tensor,
    rotation: torch.Tensor,
    translation: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    camera: PerspectiveCamera,
    weights: torch.Tensor,
    alpha_prior: torch.Tensor,
    chunks: list[slice],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One joint Gauss–Newton step on the poses (T × 6) and the shared α (K) of the weighted pixel error.

    The normal equations have arrow structure (a 6 × 6 block per frame coupled only through α), so α is
    solved on the Schur complement and each frame's pose step follows from it. The pose step is a rotation
    vector ω (``R ← exp([ω]×) R``) and a translation step. ``alpha_prior`` (K,) is the ridge weight per α_k.
    """
    mean, id_basis, exp_basis = model_parts
    count = mean.shape[0]
    reduced = torch.diag(alpha_prior)
    reduced_rhs = -alpha_prior * alpha
    saved = []
    for rows in chunks:
        shape = mean + (alpha @ id_basis.flatten(1)).view(count, 3)
        shape = shape + (beta[rows] @ exp_basis.flatten(1)).view(-1, count, 3)
        rotated = shape @ rotation[rows].transpose(-1, -2)
        posed = rotated + translation[rows, None]
        jac_point = _projection_jacobian(posed, camera)  # (T, N, 2, 3)
        jac_pose = torch.cat((-jac_point @ _skew(rotated), jac_point), -1)  # (T, N, 2, 6)
        jac_alpha = torch.einsum("tnab,tbc,knc->tnak", jac_point, rotation[rows], id_basis)  # (T, N, 2, K)
        residual = landmarks[rows] - camera.project(posed)[..., :2]
        w = weights[:, None, None]
        pose_block = torch.einsum("tnai,tnaj->tij", jac_pose * w, jac_pose) + 1e-6 * torch.eye(6)
        coupling = torch.einsum("tnai,tnak->tik", jac_pose * w, jac_alpha)  # (T, 6, K)
        pose_rhs = torch.einsum("tnai,tna->ti", jac_pose * w, residual)
        solved = torch.linalg.solve(pose_block, torch.cat((coupling, pose_rhs[..., None]), -1))  # A⁻¹[B, g]
        reduced = reduced + torch.einsum("tnak,tnal->kl", jac_alpha * w, jac_alpha)
        reduced = reduced - torch.einsum("tik,til->kl", coupling, solved[..., :-1])
        reduced_rhs = reduced_rhs + torch.einsum("tnak,tna->k", jac_alpha * w, residual)
        reduced_rhs = reduced_rhs - torch.einsum("tik,ti->k", coupling, solved[..., -1])
        saved.append(solved)
    alpha_step = torch.linalg.solve(reduced, reduced_rhs)
    steps = torch.cat([solved[..., -1] - solved[..., :-1] @ alpha_step for solved in saved])
    rotation = torch.linalg.matrix_exp(_skew(steps[:, :3])) @ rotation
    return rotation, translation + steps[:, 3:], alpha + alpha_step


def _rotated_basis(rotation: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Image-plane part of rotated basis vectors: (T, 3, 3) × (K, N, 3) → (T, K, N, 2)."""
    return torch.einsum("tab,knb->tkna", rotation[:, :2], basis)


def _fista_box(hessian: torch.Tensor, gradient: torch.Tensor, start: torch.Tensor, steps: int) -> torch.Tensor:
    """``argmin ½ βᵀHβ − gᵀβ`` over ``0 ≤ β ≤ 1`` for batches (T, K, K), (T, K), from ``start`` (T, K)."""
    step = 1.0 / torch.linalg.eigvalsh(hessian)[:, -1:]
    x = y = start
    momentum = 1.0
    for _ in range(steps):
        x_next = (y - step * ((hessian @ y[..., None]).squeeze(-1) - gradient)).clamp(0.0, 1.0)
        momentum_next = (1.0 + (1.0 + 4.0 * momentum**2) ** 0.5) / 2.0
        y = x_next + ((momentum - 1.0) / momentum_next) * (x_next - x)
        x, momentum = x_next, momentum_next
    return x


def _smooth(values: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian smoothing over time (dim 0) of (T, C) values, edges replicated."""
    radius = int(3.0 * sigma + 0.5)
    if sigma <= 0 or radius == 0:
        return values
    offsets = torch.arange(-radius, radius + 1, dtype=values.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    padded = F.pad(values.T[None], (radius, radius), mode="replicate")
    return F.conv1d(padded.transpose(0, 1), (kernel / kernel.sum())[None, None])[:, 0].T


def fit_sequence(
    model: MorphableModel,
    landmarks: torch.Tensor,
    camera: PerspectiveCamera,
    depth: torch.Tensor | None = None,
    alpha_std: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
    config: SequenceFitConfig | None = None,
) -> SequenceFit:
    """Closed-form fit of one clip: landmarks (T, N, 2) of ``model.landmark_ids`` in crop pixels → α, β, P, O_lip.

    ``depth`` (T, N) is MediaPipe's relative z (crop pixels), used only to start the pose; ``alpha_std``
    (K_id,) the identity prior's standard deviations (``builtin_identity_std`` for the built-in model;
    default 1); ``weights`` (N,) per-landmark confidence for the α/β fit (default 1); ``config`` defaults
    to :class:`SequenceFitConfig`. See the module docstring for the method.
    """
    config = config or SequenceFitConfig()
    landmarks = landmarks.float()
    frames, count = landmarks.shape[:2]
    ids = model.landmark_ids
    mean, id_basis, exp_basis = model.mean_shape[ids], model.identity_basis[:, ids], model.expression_basis[:, ids]
    prior = torch.ones(model.num_identity) if alpha_std is None else alpha_std.float()
    landmark_weight = torch.ones(count) if weights is None else weights.float()
    rigid = rigid_weights(model, config.rigid_scale)
    rotation, translation = pose_to_matrix(initial_pose(model, landmarks, camera, depth, rigid))
    alpha = torch.zeros(model.num_identity)
    beta = torch.zeros(frames, model.num_expression)
    eye = torch.eye(model.num_expression)
    chunks = [slice(start, start + config.chunk) for start in range(0, frames, config.chunk)]

    shape = mean.expand(frames, -1, -1)
    rotation, translation = _perspective_procrustes(
        shape, landmarks, rotation, translation, camera, rigid, config.pose_iterations
    )
    alpha_prior = config.alpha_reg / prior.square()
    for _ in range(config.iterations):
        for _ in range(config.pose_iterations):
            rotation, translation, alpha = _gauss_newton_pose_alpha(
                (mean, id_basis, exp_basis),
                landmarks,
                rotation,
                translation,
                alpha,
                beta,
                camera,
                landmark_weight,
                alpha_prior,
                chunks,
            )
        for rows in chunks:
            shape = mean + (alpha @ id_basis.flatten(1)).view(count, 3)
            posed = shape @ rotation[rows].transpose(-1, -2) + translation[rows, None]
            depth_now = camera.distance - posed[..., 2]
            residual = _unproject_xy(landmarks[rows], depth_now, camera) - posed[..., :2]  # what β must explain
            w = landmark_weight * (camera.focal / depth_now).square()
            basis = _rotated_basis(rotation[rows], exp_basis)
            hessian = torch.einsum("tkna,tn,tlna->tkl", basis, w, basis) + config.beta_reg * eye
            gradient = torch.einsum("tkna,tn,tna->tk", basis, w, residual)
            beta[rows] = _fista_box(hessian, gradient, beta[rows], config.beta_steps)

    pose = _smooth(matrix_to_pose(rotation, translation), config.smooth_sigma)
    beta = _smooth(beta, config.smooth_sigma if config.smooth_beta else 0.0).clamp(0.0, 1.0)
    rotation, translation = pose_to_matrix(pose)
    lip_offsets, residual, bare = lip_offsets_and_residuals(model, landmarks, camera, alpha, beta, pose)
    return SequenceFit(alpha, beta, pose, lip_offsets, residual, bare)


def lip_offsets_and_residuals(
    model: MorphableModel,
    landmarks: torch.Tensor,
    camera: PerspectiveCamera,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    pose: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """O_lip (T, L, 3) as the lip landmarks' residual, and the RMS reprojection with and without it (T,)."""
    rotation, translation = pose_to_matrix(pose)
    vertices = model.vertices(alpha[None], beta)
    posed = vertices @ rotation.transpose(-1, -2) + translation[:, None]
    position = {int(v): i for i, v in enumerate(model.landmark_ids.tolist())}
    lips = [(k, position[int(v)]) for k, v in enumerate(model.lip_ids.tolist()) if int(v) in position]
    lip_offsets = torch.zeros(pose.shape[0], model.num_lip_vertices, 3)
    if lips:
        slots, columns = map(list, zip(*lips, strict=True))
        vertex_ids = model.lip_ids[slots]
        miss = _unproject_xy(landmarks[:, columns], camera.distance - posed[:, vertex_ids, 2], camera)
        miss = miss - posed[:, vertex_ids, :2]
        lip_offsets[:, slots] = miss[..., :1] * rotation[:, None, 0] + miss[..., 1:] * rotation[:, None, 1]

    def rms(shape: torch.Tensor) -> torch.Tensor:
        projected = camera.project(apply_pose(shape[:, model.landmark_ids], pose))[..., :2]
        return (projected - landmarks).square().sum(-1).mean(-1).sqrt()

    return lip_offsets, rms(model.vertices(alpha[None], beta, lip_offsets)), rms(vertices)
