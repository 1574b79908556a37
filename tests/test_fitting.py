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
