"""NCC colours (Eq. 9), the projection texture and mask (Eq. 10), and lip heatmaps."""

import math

import pytest
import torch

from talkinghead.face import builtin_morphable_model
from talkinghead.face.camera import PerspectiveCamera
from talkinghead.face.canonical_mesh import load_canonical_mesh
from talkinghead.face.pose import apply_pose
from talkinghead.render import (
    NCCRenderer,
    compose_projection_texture,
    lip_heatmaps,
    make_rasterizer,
    ncc_colors,
)


@pytest.fixture(scope="module")
def renderer() -> NCCRenderer:
    return NCCRenderer(builtin_morphable_model(), PerspectiveCamera(), make_rasterizer("torch"))


def test_ncc_colors_span_the_unit_cube_and_follow_the_axes() -> None:
    mean_shape = builtin_morphable_model().mean_shape
    colors = ncc_colors(mean_shape)
    assert colors.shape == mean_shape.shape
    torch.testing.assert_close(colors.amin(0), torch.zeros(3))
    torch.testing.assert_close(colors.amax(0), torch.ones(3))
    for axis in range(3):  # a vertex further along x has more red, along y more green, along z more blue
        order = torch.argsort(mean_shape[:, axis])
        assert (colors[order, axis].diff() >= 0).all()
        assert (colors[order, axis].diff()[mean_shape[order, axis].diff() > 0] > 0).all()


def test_neutral_face_covers_a_plausible_area_with_left_to_right_red(renderer: NCCRenderer) -> None:
    pt_in, mask = renderer(renderer.colors.new_tensor(load_canonical_mesh().vertices).unsqueeze(0))
    assert pt_in.shape == (1, 3, 256, 256) and mask.shape == (1, 1, 256, 256)
    # The 17.7 cm × 15 cm face at 60 cm with f = 500 px covers about 16 350 px of the 256² crop.
    assert 13000 < mask.sum() < 20000
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert pt_in.min() >= 0 and pt_in.max() <= 1
    assert (pt_in * (1 - mask) == 0).all()
    rows = torch.nonzero(mask[0, 0].any(1)).squeeze(1)
    assert 130 < rows.numel() < 180  # the face is about 150 px tall
    for row in rows[10:-10:5]:
        columns = torch.nonzero(mask[0, 0, row]).squeeze(1)
        red = pt_in[0, 0, row, columns]
        assert (red.diff() >= -1e-5).all() and red[-1] - red[0] > 0.3
    centre = mask[0, 0].nonzero().float().mean(0)
    assert (centre - 128).abs().max() < 20


def test_pose_moves_the_texture_and_gradients_reach_the_vertices(renderer: NCCRenderer) -> None:
    vertices = renderer.colors.new_tensor(load_canonical_mesh().vertices).expand(2, -1, -1)
    pose = torch.tensor([[0.0, math.radians(15), 0.0, 3.0, 0.0, 0.0], [0.0, -math.radians(15), 0.0, -3.0, 0.0, 0.0]])
    posed = apply_pose(vertices, pose).requires_grad_(True)
    pt_in, mask = renderer(posed)
    right, left = mask[0, 0].nonzero().float().mean(0)[1], mask[1, 0].nonzero().float().mean(0)[1]
    assert right - left > 30  # ±3 cm at 60 cm with f = 500 px is ±25 px, plus the turn
    pt_in.sum().backward()
    assert torch.isfinite(posed.grad).all() and posed.grad.abs().sum() > 0


def test_renderer_buffers_follow_the_module(renderer: NCCRenderer) -> None:
    assert {"colors", "triangles"} <= set(renderer.state_dict())
    assert renderer.to(torch.float64).colors.dtype == torch.float64
    renderer.to(torch.float32)


def test_compose_projection_texture_is_eq_10() -> None:
    pt_in = torch.rand(2, 3, 8, 8)
    pt_out = torch.rand(2, 3, 8, 8)
    mask = (torch.rand(2, 1, 8, 8) > 0.5).float()
    composed = compose_projection_texture(pt_in, mask, pt_out)
    inside = mask.expand_as(pt_in) > 0
    assert torch.equal(composed[inside], pt_in[inside])
    assert torch.equal(composed[~inside], pt_out[~inside])


def test_lip_heatmaps_peak_at_the_landmark_pixel() -> None:
    points = torch.tensor([[[10.5, 20.5], [30.5, 5.5]], [[47.2, 31.9], [0.1, 0.2]]])
    maps = lip_heatmaps(points, (40, 48), sigma=2.0)
    assert maps.shape == (2, 2, 40, 48)
    assert maps[0, 0, 20, 10] == 1 and maps[0, 1, 5, 30] == 1
    for b in range(2):
        for k in range(2):
            peak = torch.nonzero(maps[b, k] == maps[b, k].max())[0]
            assert peak.tolist() == [int(points[b, k, 1]), int(points[b, k, 0])]
    torch.testing.assert_close(maps[0, 0, 20, 12], torch.tensor(math.exp(-4 / 8)))
    assert maps.min() >= 0 and maps.max() <= 1
