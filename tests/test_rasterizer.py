"""Rasterizer conventions (talkinghead.render.base): coverage, depth order, barycentrics, gradients."""

import math
import subprocess
import sys

import pytest
import torch

from talkinghead.face.camera import PerspectiveCamera
from talkinghead.face.canonical_mesh import load_canonical_mesh
from talkinghead.face.pose import apply_pose
from talkinghead.render import TorchRasterizer, make_rasterizer

HEIGHT, WIDTH = 48, 64  # not square, so a swapped axis shows


def brute_force_coverage(corners: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(H, W) bool: pixel centres inside or on the triangle (3, 2), by float64 edge functions."""
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    px, py = cols.double() + 0.5, rows.double() + 0.5
    c = corners.double()
    edges = []
    for i in range(3):
        a, b = c[(i + 1) % 3], c[(i + 2) % 3]
        edges.append((b[0] - a[0]) * (py - a[1]) - (b[1] - a[1]) * (px - a[0]))
    edges = torch.stack(edges)
    return (edges >= 0).all(0) | (edges <= 0).all(0)


def single_triangle(corners: list[list[float]], depth: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    screen = torch.tensor([[[u, v, depth] for u, v in corners]], dtype=torch.float32)
    return screen, torch.tensor([[0, 1, 2]])


def posed_faces(batch: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Screen vertices (B, 468, 3) of the canonical face under random yaw ±20°, pitch ±12°, roll ±8°."""
    mesh = load_canonical_mesh()
    generator = torch.Generator().manual_seed(seed)
    limits = torch.tensor([math.radians(12), math.radians(20), math.radians(8), 1.0, 1.0, 2.0])
    pose = (torch.rand(batch, 6, generator=generator) * 2 - 1) * limits
    vertices = apply_pose(torch.tensor(mesh.vertices, dtype=dtype).expand(batch, -1, -1), pose.to(dtype))
    return PerspectiveCamera().project(vertices), torch.tensor(mesh.triangles)


@pytest.mark.parametrize(
    "corners",
    [
        [[3.3, 2.1], [60.7, 5.9], [20.2, 45.6]],  # large, clockwise
        [[3.3, 2.1], [20.2, 45.6], [60.7, 5.9]],  # large, counter-clockwise
        [[-20.4, -9.7], [30.1, 20.3], [-5.2, 70.8]],  # partly off-screen
        [[40.1, 30.2], [55.9, 31.3], [47.3, 33.05]],  # thin sliver
    ],
)
def test_coverage_matches_brute_force(corners: list[list[float]]) -> None:
    screen, triangles = single_triangle(corners)
    raster = TorchRasterizer().rasterize(screen, triangles, (HEIGHT, WIDTH))
    expected = brute_force_coverage(torch.tensor(corners), HEIGHT, WIDTH)
    assert expected.any()
    assert torch.equal(raster.triangle_id[0] == 0, expected)
    assert torch.equal(raster.triangle_id[0] == -1, ~expected)


def test_sub_pixel_triangles_cover_only_the_centres_they_contain() -> None:
    around_centre = [[10.3, 7.4], [10.8, 7.45], [10.45, 7.7]]  # contains the centre (10.5, 7.5)
    between_centres = [[10.6, 7.6], [10.9, 7.65], [10.7, 7.9]]  # contains no pixel centre
    raster = TorchRasterizer().rasterize(single_triangle(around_centre)[0], torch.tensor([[0, 1, 2]]), (HEIGHT, WIDTH))
    assert (raster.triangle_id >= 0).sum() == 1 and raster.triangle_id[0, 7, 10] == 0
    raster = TorchRasterizer().rasterize(
        single_triangle(between_centres)[0], torch.tensor([[0, 1, 2]]), (HEIGHT, WIDTH)
    )
    assert (raster.triangle_id >= 0).sum() == 0


def test_row_zero_is_the_top_of_the_image() -> None:
    screen, triangles = single_triangle([[0.0, 0.0], [64.0, 0.0], [0.0, 10.2]])
    covered = TorchRasterizer().rasterize(screen, triangles, (HEIGHT, WIDTH)).triangle_id[0] >= 0
    assert covered[0].sum() > 60 and not covered[20:].any()
    assert covered[:, 0].sum() == 10 and covered[5, :29].all() and not covered[5, 29:].any()


def test_degenerate_offscreen_and_behind_camera_triangles_are_not_drawn() -> None:
    screen = torch.tensor(
        [
            [
                [5.5, 5.5, 10.0],
                [20.5, 20.5, 10.0],
                [35.5, 35.5, 10.0],  # zero area (collinear)
                [-50.0, -40.0, 10.0],
                [-10.0, -40.0, 10.0],
                [-30.0, -5.0, 10.0],  # fully off-screen
                [5.0, 5.0, -1.0],
                [60.0, 5.0, 10.0],
                [30.0, 40.0, 10.0],  # a vertex behind the camera
            ]
        ]
    )
    raster = TorchRasterizer().rasterize(screen, torch.arange(9).view(3, 3), (HEIGHT, WIDTH))
    assert (raster.triangle_id == -1).all()
    assert torch.isinf(raster.depth).all() and (raster.barycentrics == 0).all()


@pytest.mark.parametrize("near_first", [True, False])
def test_nearer_triangle_wins_regardless_of_order(near_first: bool) -> None:
    near = [[4.2, 3.1, 5.0], [40.3, 6.2, 5.0], [10.1, 40.7, 5.0]]
    far = [[20.4, 5.3, 9.0], [60.2, 20.1, 9.0], [25.7, 44.6, 9.0]]
    screen = torch.tensor([near + far if near_first else far + near])
    triangles = torch.arange(6).view(2, 3)
    raster = TorchRasterizer().rasterize(screen, triangles, (HEIGHT, WIDTH))
    near_cover = brute_force_coverage(torch.tensor(near)[:, :2], HEIGHT, WIDTH)
    far_cover = brute_force_coverage(torch.tensor(far)[:, :2], HEIGHT, WIDTH)
    overlap = near_cover & far_cover
    assert overlap.sum() > 50
    near_id, far_id = (0, 1) if near_first else (1, 0)
    assert (raster.triangle_id[0][near_cover] == near_id).all()
    assert (raster.triangle_id[0][far_cover & ~near_cover] == far_id).all()
    torch.testing.assert_close(raster.depth[0][overlap], torch.full((int(overlap.sum()),), 5.0))


def test_interpenetrating_triangles_split_where_depths_cross() -> None:
    # A triangle tilting in depth from 4 (u = −1) to 16 (u = 65) pierces a flat one at depth 8. Under
    # perspective 1/depth is linear on screen: 1/4 → 1/16, so it crosses 1/8 at u = −1 + 66·2/3 = 43.
    tilted = [[-1.0, -1.0, 4.0], [65.0, -1.0, 16.0], [-1.0, 200.0, 4.0]]
    flat = [[u, v, 8.0] for u, v, _ in tilted]
    raster = TorchRasterizer().rasterize(torch.tensor([flat + tilted]), torch.arange(6).view(2, 3), (HEIGHT, WIDTH))
    assert (raster.triangle_id[0, :10, :43] == 1).all() and (raster.triangle_id[0, :10, 43:60] == 0).all()
    assert raster.depth[0][raster.triangle_id[0] >= 0].max() <= 8.0 + 1e-5


def test_equal_depths_go_to_the_lower_triangle_id() -> None:
    corners = [[2.2, 3.3, 7.0], [50.1, 8.4, 7.0], [12.5, 40.6, 7.0]]
    screen = torch.tensor([corners + corners])
    raster = TorchRasterizer().rasterize(screen, torch.tensor([[3, 4, 5], [0, 1, 2]]), (HEIGHT, WIDTH))
    covered = raster.triangle_id[0] >= 0
    assert covered.sum() > 100 and (raster.triangle_id[0][covered] == 0).all()


def test_backface_culling_follows_the_camera_winding() -> None:
    counter_clockwise_on_screen = [[3.3, 2.1], [20.2, 45.6], [60.7, 5.9]]  # top-left, bottom, top-right
    front = single_triangle(counter_clockwise_on_screen)
    back = single_triangle(counter_clockwise_on_screen[::-1])
    rasterizer = TorchRasterizer()
    assert (rasterizer.rasterize(*front, (HEIGHT, WIDTH), cull_backfaces=True).triangle_id == 0).any()
    assert (rasterizer.rasterize(*back, (HEIGHT, WIDTH), cull_backfaces=True).triangle_id == -1).all()
    assert (rasterizer.rasterize(*back, (HEIGHT, WIDTH)).triangle_id == 0).any()
    screen, triangles = posed_faces(2)
    both = rasterizer.rasterize(screen, triangles, (256, 256)).triangle_id
    culled = rasterizer.rasterize(screen, triangles, (256, 256), cull_backfaces=True).triangle_id
    assert (both == culled).float().mean() > 0.999  # the visible face is front-facing


def test_barycentrics_sum_to_one_and_reproduce_the_pixel_centre() -> None:
    screen, triangles = posed_faces(3, dtype=torch.float64)
    camera = PerspectiveCamera()
    rasterizer = TorchRasterizer()
    raster = rasterizer.rasterize(screen, triangles, (256, 256))
    covered = raster.triangle_id >= 0
    assert covered.sum(dim=(1, 2)).min() > 10000
    sums = raster.barycentrics.sum(-1)
    torch.testing.assert_close(sums[covered], torch.ones_like(sums[covered]))
    assert (raster.barycentrics[~covered] == 0).all()
    # Perspective-correct weights interpolate the 3-D surface point; projected, it is the pixel centre.
    world = rasterizer.interpolate(camera.unproject(screen), raster, triangles)  # (B, 3, H, W)
    projected = camera.project(world.permute(0, 2, 3, 1))[covered]
    rows, cols = torch.nonzero(covered)[:, 1], torch.nonzero(covered)[:, 2]
    assert (projected[:, 0] - (cols + 0.5)).abs().max() < 1e-4
    assert (projected[:, 1] - (rows + 0.5)).abs().max() < 1e-4
    torch.testing.assert_close(projected[:, 2], raster.depth[covered])


def test_constant_depth_interpolates_screen_coordinates_exactly() -> None:
    screen, triangles = posed_faces(2, dtype=torch.float64)
    screen = torch.cat([screen[..., :2], torch.full_like(screen[..., 2:], 50.0)], dim=-1)
    rasterizer = TorchRasterizer()
    raster = rasterizer.rasterize(screen, triangles, (256, 256))
    uv = rasterizer.interpolate(screen[..., :2], raster, triangles, background=-1.0)
    covered = raster.triangle_id >= 0
    rows, cols = torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij")
    assert (uv[:, 0][covered] - (cols + 0.5).expand_as(covered)[covered]).abs().max() < 1e-4
    assert (uv[:, 1][covered] - (rows + 0.5).expand_as(covered)[covered]).abs().max() < 1e-4
    assert (uv[:, 0][~covered] == -1).all()


def test_interpolate_accepts_shared_attributes_and_background() -> None:
    screen, triangles = posed_faces(2)
    rasterizer = TorchRasterizer()
    raster = rasterizer.rasterize(screen, triangles, (256, 256))
    colors = torch.rand(screen.shape[1], 4)
    shared = rasterizer.interpolate(colors, raster, triangles, background=0.25)
    per_item = rasterizer.interpolate(colors.expand(2, -1, -1), raster, triangles, background=0.25)
    assert shared.shape == (2, 4, 256, 256)
    torch.testing.assert_close(shared, per_item)
    assert (shared.permute(0, 2, 3, 1)[raster.triangle_id < 0] == 0.25).all()
    assert shared.min() >= 0 and shared.max() <= 1


def test_gradients_reach_attributes_and_vertex_positions() -> None:
    screen, triangles = posed_faces(2)
    screen.requires_grad_(True)
    colors = torch.rand(screen.shape[1], 3, requires_grad=True)
    rasterizer = TorchRasterizer()
    raster = rasterizer.rasterize(screen, triangles, (256, 256))
    image = rasterizer.interpolate(colors, raster, triangles)
    (image * torch.rand_like(image)).sum().backward()
    assert torch.isfinite(colors.grad).all() and (colors.grad.abs().sum(1) > 0).float().mean() > 0.5
    assert torch.isfinite(screen.grad).all() and screen.grad[..., :2].abs().sum() > 0


def test_position_gradients_match_finite_differences_inside_a_triangle() -> None:
    corners = torch.tensor([[[4.3, 3.2, 8.0], [58.4, 9.7, 12.0], [15.6, 44.1, 10.0]]], dtype=torch.float64)
    triangles = torch.tensor([[0, 1, 2]])
    attributes = torch.tensor([[0.2, 1.0], [0.7, -0.5], [1.5, 0.3]], dtype=torch.float64)
    weights = torch.rand(3, 2, 16, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rasterizer = TorchRasterizer()

    def render(points: torch.Tensor) -> torch.Tensor:
        raster = rasterizer.rasterize(points, triangles, (HEIGHT, WIDTH))
        image = rasterizer.interpolate(attributes, raster, triangles)[0, :, 8:24, 14:34]
        return (weights * image).sum(dim=(1, 2, 3))  # three random projections of the interior

    assert (rasterizer.rasterize(corners, triangles, (HEIGHT, WIDTH)).triangle_id[0, 8:24, 14:34] == 0).all()
    assert torch.autograd.gradcheck(render, (corners.requires_grad_(True),), eps=1e-6, atol=1e-5)


def test_batched_equals_per_item() -> None:
    screen, triangles = posed_faces(4, seed=3)
    rasterizer = TorchRasterizer()
    batched = rasterizer.rasterize(screen, triangles, (128, 160))
    for i in range(4):
        single = rasterizer.rasterize(screen[i : i + 1], triangles, (128, 160))
        assert torch.equal(batched.triangle_id[i], single.triangle_id[0])
        torch.testing.assert_close(batched.barycentrics[i], single.barycentrics[0])
        torch.testing.assert_close(batched.depth[i], single.depth[0])


def test_make_rasterizer_backends() -> None:
    assert make_rasterizer("torch").name == "torch"
    assert make_rasterizer("auto", device="cpu").name == "torch"
    with pytest.raises(ValueError, match="unknown rasterizer backend"):
        make_rasterizer("opengl")
    with pytest.raises(RuntimeError, match="nvdiffrast"):
        make_rasterizer("nvdiffrast", device="cpu")


def test_missing_nvdiffrast_is_a_clear_error() -> None:
    from talkinghead.render.nvdiffrast_backend import import_nvdiffrast, nvdiffrast_available

    if nvdiffrast_available():
        pytest.skip("nvdiffrast is installed")
    with pytest.raises(RuntimeError, match=r"pip install -e \.\[nvdiffrast\]"):
        import_nvdiffrast()


def test_importing_render_does_not_import_nvdiffrast() -> None:
    code = "import sys, talkinghead.render; assert 'nvdiffrast' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.gpu
def test_torch_and_nvdiffrast_backends_agree() -> None:
    pytest.importorskip("nvdiffrast.torch")
    screen, triangles = posed_faces(8, seed=5)
    screen, triangles = screen.cuda(), triangles.cuda()
    reference = TorchRasterizer().rasterize(screen, triangles, (256, 256))
    nvdiffrast = make_rasterizer("nvdiffrast", device="cuda")
    raster = nvdiffrast.rasterize(screen, triangles, (256, 256))
    same = raster.triangle_id == reference.triangle_id
    assert same.float().mean() >= 0.99
    both = same & (reference.triangle_id >= 0)
    torch.testing.assert_close(raster.barycentrics[both], reference.barycentrics[both], atol=2e-3, rtol=0)
    torch.testing.assert_close(raster.depth[both], reference.depth[both], atol=1e-2, rtol=0)
    colors = torch.rand(screen.shape[1], 3, device="cuda")
    image = nvdiffrast.interpolate(colors, raster, triangles)
    expected = TorchRasterizer().interpolate(colors, reference, triangles)
    mask = both.unsqueeze(1).expand_as(image)
    torch.testing.assert_close(image[mask], expected[mask], atol=2e-3, rtol=0)
    smoothed = nvdiffrast.antialias(image, raster)
    assert smoothed.shape == image.shape and torch.isfinite(smoothed).all()
