"""Weight-free facial-motion metrics on constructed meshes with known answers."""

import math

import torch

from talkinghead.face import builtin_morphable_model
from talkinghead.metrics.facial_motion import (
    FaceMeasurements,
    lip_vertex_error,
    mouth_opening,
    upper_face_dynamics_deviation,
)

MODEL = builtin_morphable_model()
MEASURE = FaceMeasurements.from_model(MODEL)


def test_measurements_use_the_mediapipe_lip_landmarks():
    assert MEASURE.opening_pair == (13, 14)
    assert set(MEASURE.corner_pair) == {61, 291}
    assert MEASURE.mouth_width(MODEL.mean_shape) == (MODEL.mean_shape[61] - MODEL.mean_shape[291]).norm()


def test_lip_vertex_error_is_the_per_frame_maximum():
    target = MODEL.mean_shape.expand(2, 3, -1, -1).clone()
    predicted = target.clone()
    predicted[0, 1, MEASURE.lip_ids[5], 0] += 0.3
    predicted[0, 1, MEASURE.lip_ids[7], 1] -= 0.1
    predicted[1, 2, 0, 2] += 5.0  # vertex 0 is a lip vertex (upper lip middle)
    predicted[1, 0, 1, 2] += 5.0  # vertex 1 (nose tip) is not
    error = lip_vertex_error(predicted, target, MEASURE.lip_ids)
    torch.testing.assert_close(error, torch.tensor([[0.0, 0.3, 0.0], [0.0, 0.0, 5.0]]))


def test_mouth_opening_distance():
    vertices = MODEL.mean_shape.clone()
    vertices[14] = vertices[13] + torch.tensor([0.0, -1.5, 0.0])
    torch.testing.assert_close(mouth_opening(vertices, MEASURE.opening_pair), torch.tensor(1.5))


def test_upper_face_dynamics_deviation_closed_form():
    """Upper face displaced by 0, 0, 3d over three frames: |x − mean| = d, d, 2d, std = d/√3."""
    d = 0.2
    target = MODEL.mean_shape.expand(1, 3, -1, -1).clone()
    target[0, 2, MEASURE.upper_face_ids, 1] += 3 * d
    static = MODEL.mean_shape.expand(1, 3, -1, -1)
    fdd = upper_face_dynamics_deviation(static, target, MEASURE.upper_face_ids)
    torch.testing.assert_close(fdd, torch.tensor([d / math.sqrt(3)]))
    assert upper_face_dynamics_deviation(target, target, MEASURE.upper_face_ids).abs().max() < 1e-6
