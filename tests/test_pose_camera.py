"""Pose parameterisation (Eq. 4, 5, 8) and the crop camera: exact analytic cases and round trips."""

import math

import pytest
import torch

from talkinghead.face.camera import PerspectiveCamera
from talkinghead.face.pose import (
    apply_pose,
    compose_relative,
    matrix_to_pose,
    pose_to_matrix,
    relative_pose,
    rotation_matrix,
)


def _random_poses(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    limits = torch.tensor([math.radians(12), math.radians(20), math.radians(8), 2.0, 2.0, 5.0])
    return (torch.rand(n, 6, generator=g, dtype=torch.float64) * 2 - 1) * limits


@pytest.mark.parametrize(
    ("angles", "point", "expected"),
    [
        ((math.pi / 2, 0, 0), (0, 1, 0), (0, 0, 1)),  # pitch: forehead towards the camera
        ((0, math.pi / 2, 0), (0, 0, 1), (1, 0, 0)),  # yaw: nose towards +x
        ((0, 0, math.pi / 2), (1, 0, 0), (0, 1, 0)),  # roll: counter-clockwise in the image
    ],
)
def test_axis_conventions(angles, point, expected):
    rotation = rotation_matrix(torch.tensor(angles, dtype=torch.float64))
    moved = rotation @ torch.tensor(point, dtype=torch.float64)
    torch.testing.assert_close(moved, torch.tensor(expected, dtype=torch.float64), atol=1e-12, rtol=0)


def _about_one_axis(axis: int, angle: float) -> torch.Tensor:
    angles = torch.zeros(3)
    angles[axis] = angle
    return rotation_matrix(angles)


def test_composition_order_is_roll_yaw_pitch():
    pitch, yaw, roll = 0.1, -0.2, 0.3
    expected = _about_one_axis(2, roll) @ _about_one_axis(1, yaw) @ _about_one_axis(0, pitch)
    torch.testing.assert_close(rotation_matrix(torch.tensor([pitch, yaw, roll])), expected, atol=1e-6, rtol=0)


def test_pose_matrix_round_trip():
    poses = _random_poses(256)
    rotation, translation = pose_to_matrix(poses)
    torch.testing.assert_close(
        rotation @ rotation.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(256, 3, 3)
    )
    torch.testing.assert_close(matrix_to_pose(rotation, translation), poses, atol=1e-9, rtol=0)


def test_apply_pose_is_rigid_and_batched():
    poses = _random_poses(4).reshape(2, 2, 6)
    points = torch.randn(2, 2, 10, 3, dtype=torch.float64)
    moved = apply_pose(points, poses)
    assert moved.shape == (2, 2, 10, 3)
    torch.testing.assert_close(torch.cdist(moved, moved), torch.cdist(points, points))
    rotation, translation = pose_to_matrix(poses[1, 0])
    torch.testing.assert_close(moved[1, 0], points[1, 0] @ rotation.T + translation)


def test_relative_pose_round_trip():
    poses = _random_poses(30).reshape(3, 10, 6)
    initial = poses[:, 0]
    relative = relative_pose(poses, initial)
    assert torch.all(relative[:, 0] == 0)
    torch.testing.assert_close(compose_relative(initial, relative), poses)


def test_bad_pose_width_is_named():
    with pytest.raises(ValueError, match="6 numbers"):
        apply_pose(torch.zeros(5, 3), torch.zeros(5))


def test_camera_projection_exact_values():
    camera = PerspectiveCamera(image_size=256, focal=500.0, distance=60.0)
    points = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 10.0]], dtype=torch.float64)
    screen = camera.project(points)
    expected = torch.tensor(
        [[128.0, 128.0, 60.0], [128 + 500 / 60, 128.0, 60.0], [128.0, 128 - 500 / 60, 60.0], [128.0, 128.0, 50.0]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(screen, expected)
    torch.testing.assert_close(camera.unproject(screen), points)
