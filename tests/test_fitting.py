"""Landmark fitting recovers pose and reprojects synthetic built-in-model landmarks (§3.1)."""

import math

import torch

from talkinghead.face.builtin import builtin_identity_std, builtin_morphable_model
from talkinghead.face.camera import PerspectiveCamera
from talkinghead.face.fitting import fit_landmarks, similarity_procrustes
from talkinghead.face.pose import apply_pose, rotation_matrix


def test_similarity_procrustes_is_exact_on_a_similarity():
    g = torch.Generator().manual_seed(0)
    source = torch.randn(3, 50, 3, generator=g, dtype=torch.float64)
    rotation = rotation_matrix(torch.tensor([[0.3, -0.5, 0.2], [0.0, 0.1, -1.0], [1.0, 0.4, 0.0]], dtype=torch.float64))
    scale = torch.tensor([0.5, 2.0, 30.0], dtype=torch.float64)
    shift = torch.randn(3, 3, generator=g, dtype=torch.float64)
    target = scale[:, None, None] * source @ rotation.transpose(-1, -2) + shift[:, None]
    s, r, t = similarity_procrustes(source, target)
    torch.testing.assert_close(s, scale)
    torch.testing.assert_close(r, rotation)
    torch.testing.assert_close(t, shift)


def test_fit_reprojects_and_recovers_pose():
    """Stated tolerances: RMS reprojection < 0.5 px, rotation error < 3° per angle on average.

    Identity and expression are only partly identifiable from 2-D landmarks of one frame (depth and
    shape trade off), so they are not asserted here.
    """
    model, camera = builtin_morphable_model(), PerspectiveCamera()
    g = torch.Generator().manual_seed(0)
    alpha = torch.randn(8, model.num_identity, generator=g) * builtin_identity_std()
    beta = torch.rand(8, model.num_expression, generator=g) * (torch.rand(8, 52, generator=g) < 0.15)
    limits = torch.tensor([math.radians(12), math.radians(20), math.radians(8), 1.0, 1.0, 2.0])
    pose = (torch.rand(8, 6, generator=g) * 2 - 1) * limits
    landmarks = camera.project(apply_pose(model.vertices(alpha, beta), pose))[..., :2]
    fit = fit_landmarks(model, landmarks, camera, steps=300, lr=0.05)
    assert fit.residual.mean() < 0.5
    assert torch.all((fit.beta >= 0) & (fit.beta <= 1))
    assert (fit.pose[:, :3] - pose[:, :3]).abs().mean(0).rad2deg().max() < 3.0


def _synthetic_sequence(frames: int = 40, seed: int = 0):
    """Exact landmarks of the built-in model: random α, sparse β, poses within ±12°/±20°/±8°, ±1/±1/±2 cm."""
    model, camera = builtin_morphable_model(), PerspectiveCamera()
    g = torch.Generator().manual_seed(seed)
    alpha = torch.randn(model.num_identity, generator=g) * builtin_identity_std()
    beta = torch.rand(frames, 52, generator=g) * (torch.rand(frames, 52, generator=g) < 0.15)
    limits = torch.tensor([math.radians(12), math.radians(20), math.radians(8), 1.0, 1.0, 2.0])
    pose = (torch.rand(frames, 6, generator=g) * 2 - 1) * limits
    landmarks = camera.project(apply_pose(model.vertices(alpha, beta), pose))[..., :2]
    return model, camera, alpha, beta, pose, landmarks


def test_fit_sequence_recovers_exact_model_landmarks():
    """Closed-form clip fit on noise-free model landmarks, light priors (clean data).

    Stated tolerances (measured on a 60-frame variant: 0.23 px, 0.26°, 0.17 σ, 0.056): RMS reprojection
    < 0.4 px, rotation error < 0.5° per angle on average, mean |α − α_true| < 0.3 prior σ, lip-blendshape
    β MAE < 0.08 (some lip shapes are nearly collinear in 2-D, so β is the least determined).
    """
    from talkinghead.face import LIP_BLENDSHAPES
    from talkinghead.face.fitting import SequenceFitConfig, fit_sequence

    model, camera, alpha, beta, pose, landmarks = _synthetic_sequence()
    fit = fit_sequence(
        model,
        landmarks,
        camera,
        alpha_std=builtin_identity_std(),
        config=SequenceFitConfig(alpha_reg=10.0, beta_reg=1.0),
    )
    lips = [model.expression_index(name) for name in LIP_BLENDSHAPES]
    assert fit.residual_without_lips.mean() < 0.4
    assert (fit.pose[:, :3] - pose[:, :3]).abs().mean().rad2deg() < 0.5
    assert ((fit.alpha - alpha) / builtin_identity_std()).abs().mean() < 0.3
    assert (fit.beta[:, lips] - beta[:, lips]).abs().mean() < 0.08
    assert torch.all((fit.beta >= 0) & (fit.beta <= 1))


def test_lip_offsets_are_the_lip_residual():
    """O_lip closes the lips' image-plane residual: with it the lip landmarks reproject within 0.01 px."""
    from talkinghead.face.fitting import fit_sequence

    model, camera, _, _, pose, landmarks = _synthetic_sequence(frames=8, seed=1)
    noisy = landmarks + 0.8 * torch.randn(landmarks.shape, generator=torch.Generator().manual_seed(2))
    fit = fit_sequence(model, noisy, camera, alpha_std=builtin_identity_std())
    assert fit.lip_offsets.shape == (8, model.num_lip_vertices, 3)
    vertices = model.vertices(fit.alpha[None], fit.beta, fit.lip_offsets)
    projected = camera.project(apply_pose(vertices, fit.pose))[:, model.lip_ids, :2]
    assert (projected - noisy[:, model.lip_ids]).norm(dim=-1).max() < 0.01
    assert fit.residual.mean() < fit.residual_without_lips.mean()


def test_mediapipe_ibug68_table_is_mirror_symmetric():
    """The FaceVerse landmark subset: each iBUG point's mirror partner is the mirrored MediaPipe vertex."""
    from talkinghead.face.fitting import MEDIAPIPE_IBUG68
    from talkinghead.face.regions import mirror_permutation

    ibug_mirror = (
        list(range(16, -1, -1))
        + list(range(26, 16, -1))
        + [27, 28, 29, 30, 35, 34, 33, 32, 31]
        + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
        + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
        + [64, 63, 62, 61, 60, 67, 66, 65]
    )
    permutation = mirror_permutation(builtin_morphable_model().mean_shape.numpy())
    table = list(MEDIAPIPE_IBUG68)
    assert len(set(table)) == 68
    assert [int(permutation[table[i]]) for i in range(68)] == [table[j] for j in ibug_mirror]
