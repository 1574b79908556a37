"""Head pose as 6 numbers and its action on meshes (Eq. 4, Eq. 8).

A pose is ``(pitch, yaw, roll, tx, ty, tz)``: angles in radians, translation in centimetres, in the
world frame of :mod:`talkinghead.face.camera` (+x image right, +y up, +z towards the camera).
``R = Rz(roll) · Ry(yaw) · Rx(pitch)`` and a posed vertex is ``x' = R x + t`` about the canonical
model's origin. Signs: pitch > 0 tips the forehead towards the camera (looks down), yaw > 0 turns the
nose towards +x (image right), roll > 0 turns the face counter-clockwise in the image.

Rotations go through kornia's quaternion/Euler conversions, whose ``(roll, pitch, yaw)`` are the angles
about (x, y, z), i.e. our (pitch, yaw, roll).

The head-pose codebook works on the relative pose ``P_r = P − P⁰`` (Eq. 5–7), a component-wise
difference of the 6 numbers; a predicted relative pose drives the reference image by
``P = P_ref + P_r`` (Eq. 8), which is how :func:`compose_relative` reads the paper's ``⊗``.
"""

import torch
from kornia.geometry import conversions

from talkinghead.conventions import POSE_DIM


def _check(pose: torch.Tensor) -> None:
    if pose.shape[-1] != POSE_DIM:
        raise ValueError(f"a pose has {POSE_DIM} numbers (pitch, yaw, roll, tx, ty, tz), got shape {tuple(pose.shape)}")


def rotation_matrix(angles: torch.Tensor) -> torch.Tensor:
    """(pitch, yaw, roll) (..., 3) in radians → rotation matrices (..., 3, 3)."""
    pitch, yaw, roll = angles.unbind(-1)
    quaternion = conversions.quaternion_from_euler(pitch, yaw, roll)
    return conversions.quaternion_to_rotation_matrix(torch.stack(quaternion, dim=-1))


def rotation_angles(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) → (pitch, yaw, roll) (..., 3); yaw in [−π/2, π/2]."""
    quaternion = conversions.rotation_matrix_to_quaternion(matrix.contiguous())
    pitch, yaw, roll = conversions.euler_from_quaternion(*quaternion.unbind(-1))
    return torch.stack((pitch, yaw, roll), dim=-1)


def pose_to_matrix(pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose (..., 6) → (R (..., 3, 3), t (..., 3))."""
    _check(pose)
    return rotation_matrix(pose[..., :3]), pose[..., 3:]


def matrix_to_pose(rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """(R (..., 3, 3), t (..., 3)) → pose (..., 6)."""
    return torch.cat((rotation_angles(rotation), translation), dim=-1)


def apply_pose(vertices: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """Rigidly move vertices (..., N, 3) by poses (..., 6): ``x' = R x + t`` (the ⊗ of Eq. 4, 8)."""
    return apply_rigid(vertices, *pose_to_matrix(pose))


def apply_rigid(vertices: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """:func:`apply_pose` with the pose already turned into (R (..., 3, 3), t (..., 3)) by :func:`pose_to_matrix`
    (for several meshes moved by the same poses)."""
    return vertices @ rotation.transpose(-1, -2) + translation.unsqueeze(-2)


def relative_pose(pose: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
    """``P_r = P − P⁰`` (Eq. 5): pose sequence (..., T, 6) minus its initial pose (..., 6)."""
    _check(pose)
    _check(initial)
    return pose - initial.unsqueeze(-2)


def compose_relative(reference: torch.Tensor, relative: torch.Tensor) -> torch.Tensor:
    """Absolute poses that drive the reference image: ``P_ref + P_r`` (Eq. 8), shapes as above."""
    _check(reference)
    _check(relative)
    return reference.unsqueeze(-2) + relative
