"""Stage-2 inputs (§3.3, Eq. 9–10): projection textures with the outer region, lip heatmaps, the face parser."""

import numpy as np
import pytest
import torch
from kornia.filters import gaussian_blur2d

from talkinghead.face import PerspectiveCamera, builtin_morphable_model
from talkinghead.face.pose import apply_pose
from talkinghead.render import FaceParser, MediaPipeFaceParser, MotionInputRenderer, make_face_parser
from talkinghead.render.face_parser import outer_labels
from talkinghead.render.flow_extension import gaussian_blur, gaussian_kernel_size
from talkinghead.render.motion_inputs import OUTER_COLORS, head_motion_theta
from talkinghead.render.warp import warp


@pytest.fixture(scope="module")
def model():
    return builtin_morphable_model()


@pytest.fixture(scope="module")
def renderer(model):
    return MotionInputRenderer(model, PerspectiveCamera(), render_size=128, motion_size=64, rasterizer="torch")


def _face(pose: list[float], model, batch: int = 1) -> dict[str, torch.Tensor]:
    return {
        "beta": torch.zeros(batch, 52),
        "pose": torch.tensor([pose] * batch),
        "lip_offsets": torch.zeros(batch, model.num_lip_vertices, 3),
    }


def _block_labels(size: int = 256) -> torch.Tensor:
    """Background everywhere, a head block (rows 40–140, columns 60–196) and a torso block (rows 200+)."""
    labels = torch.zeros(1, 3, size, size)
    labels[:, 0] = 1
    labels[:, :, 40:140, 60:196] = torch.tensor([0.0, 1.0, 0.0])[:, None, None]
    labels[:, :, 200:, 40:216] = torch.tensor([0.0, 0.0, 1.0])[:, None, None]
    return labels


def test_same_reference_and_driven_give_the_same_texture(model, renderer):
    face = _face([0.1, -0.2, 0.05, 0.5, -0.3, 1.0], model)
    out = renderer(torch.zeros(1, model.num_identity), face, face, _block_labels())
    assert torch.allclose(out["pt_reference"], out["pt_driven"], atol=1e-5)
    assert out["pt_driven"].shape == (1, 3, 64, 64) and out["lip_driven"].shape == (1, model.num_lip_vertices, 64, 64)
    assert out["flow_mesh"].abs().max() < 2e-3  # 0.06 px: float rounding on partly covered silhouette pixels
    torch.testing.assert_close(out["lip_reference"], out["lip_driven"])
    # Eq. 10: outside the face mask the texture is the colour code of the labels
    background = (out["mask_driven"][0, 0] == 0) & (torch.arange(64)[:, None] < 8)
    assert torch.equal(out["pt_driven"][0, :, background], torch.zeros(3, int(background.sum())))
    assert 0.1 < out["mask_driven"].mean() < 0.6


def test_head_region_follows_the_rigid_motion_and_the_torso_stays(model, renderer):
    """A 2-cm move to the right shifts the head labels by f·2/d pixels; the torso block does not move."""
    reference = _face([0.0, 0.0, 0.0, 0.0, 0.0, 0.0], model)
    driven = _face([0.0, 0.0, 0.0, 2.0, 0.0, 0.0], model)
    out = renderer(torch.zeros(1, model.num_identity), reference, driven, _block_labels())
    head_color = torch.tensor(OUTER_COLORS[1])[:, None, None]
    torso_color = torch.tensor(OUTER_COLORS[2])[:, None, None]

    def centroid_x(pt: torch.Tensor, color: torch.Tensor) -> float:
        weight = ((pt - color).abs().sum(0) < 1e-3).float()[:16]  # rows 0–15 at 64²: hair above the face mask
        return float((weight * (torch.arange(64) + 0.5)).sum() / weight.sum())

    shift = 500.0 * 2.0 / 60.0 * 64 / 256  # pixels at 64² (the mesh sits at depth ≈ d)
    moved = centroid_x(out["pt_driven"][0], head_color) - centroid_x(out["pt_reference"][0], head_color)
    assert moved == pytest.approx(shift, abs=0.5)
    torso = [((pt[0, :, 58:] - torso_color).abs() < 1e-3).all(0) for pt in (out["pt_reference"], out["pt_driven"])]
    assert torso[0].sum() > 200 and torch.equal(torso[0], torso[1])  # rows below the chin


def test_head_motion_theta_recovers_an_affine_map():
    generator = torch.Generator().manual_seed(0)
    moved = torch.rand(2, 50, 2, generator=generator) * 256
    matrix = torch.tensor([[1.1, 0.1], [-0.05, 0.95]])
    reference = moved @ matrix.T + torch.tensor([3.0, -7.0])
    theta = head_motion_theta(reference, moved, 256)
    normalized = torch.cat((2 * moved / 256 - 1, torch.ones(2, 50, 1)), dim=-1)
    torch.testing.assert_close(normalized @ theta.transpose(1, 2), 2 * reference / 256 - 1, atol=1e-5, rtol=0)


def test_lip_heatmaps_peak_at_the_projected_lip_vertices(model, renderer):
    face = _face([0.0, 0.3, 0.0, 0.0, 1.0, 0.0], model)
    out = renderer(torch.zeros(1, model.num_identity), face, face, _block_labels())
    camera = PerspectiveCamera(64, 500.0 / 4, 60.0)
    lips = camera.project(apply_pose(model.vertices(), face["pose"][0])[model.lip_ids])[:, :2]
    peaks = out["lip_driven"][0].flatten(1).argmax(1)
    rows, cols = peaks // 64, peaks % 64
    assert (cols + 0.5 - lips[:, 0]).abs().max() <= 0.5 and (rows + 0.5 - lips[:, 1]).abs().max() <= 0.5


def test_mesh_flow_maps_the_driven_face_onto_the_reference_texture(model, renderer):
    """Warping PT_ref by the mesh-correspondence flow reproduces PT_d on the inner face."""
    reference = _face([0.0, 0.0, 0.0, 0.0, 0.0, 0.0], model)
    driven = _face([0.05, 0.1, 0.0, 1.0, 0.5, 0.0], model)
    out = renderer(torch.zeros(1, model.num_identity), reference, driven, _block_labels())
    inner = out["mask_driven"] == 1
    before = (out["pt_reference"] - out["pt_driven"]).abs()[inner.expand(-1, 3, -1, -1)].mean()
    after = (warp(out["pt_reference"], out["flow_mesh"]) - out["pt_driven"]).abs()[inner.expand(-1, 3, -1, -1)]
    assert after.median() < before / 5, (before, after.median())


def test_outer_labels_split_person_into_head_and_torso():
    person = np.zeros((100, 100), np.float32)
    person[20:, 20:80] = 1
    face = np.array([[40.0, 30.0], [60.0, 30.0], [60.0, 50.0], [40.0, 50.0]])  # chin at row 50
    labels = outer_labels(person, face)
    assert np.allclose(labels.sum(0), 1)
    assert labels[0, 5, 5] == 1  # background
    assert labels[1, 25, 30] == 1 and labels[1, 40, 50] == 1  # hair, face
    assert labels[2, 90, 50] == 1  # torso


def test_mediapipe_parser_on_a_corpus_frame(tiny_corpus):
    from talkinghead.data.datamodule import TalkingHeadDataModule

    data = TalkingHeadDataModule(str(tiny_corpus), mode="stage2", batch_size=1)
    data.setup()
    batch = next(iter(data.val_dataloader()))
    points = batch["reference_landmarks"]
    labels = MediaPipeFaceParser().parse(batch["reference_frame"], points)
    assert labels.shape == (1, 3, 256, 256)
    torch.testing.assert_close(labels.sum(1), torch.ones(1, 256, 256))
    u, v = points[0].round().long().T.clamp(0, 255)
    assert labels[0, 1, v, u].mean() > 0.95  # the face is head
    assert labels[0, 2, 250].mean() > 0.3  # the bottom rows are mostly torso
    assert labels[0, 0, :5].mean() > 0.3  # the top corners are background


class _AllBackground(FaceParser):
    def parse(self, images, face_points):
        labels = torch.zeros_like(images)
        labels[:, 0] = 1
        return labels


def test_make_face_parser_accepts_an_import_path():
    assert isinstance(make_face_parser("mediapipe"), MediaPipeFaceParser)
    assert isinstance(make_face_parser(f"{__name__}._AllBackground"), _AllBackground)
    with pytest.raises(ValueError, match="mediapipe"):
        make_face_parser("celeba")


def test_prior_flow_warps_corpus_references_onto_their_driven_frames(tiny_corpus, model):
    """The 3-D prior's flow alone (``flow_prior``, 64² upsampled to 256²) turns the reference frame into the
    driven frame far better than copying it: ≥ 5 dB more PSNR on validation pairs of the embedded corpus."""
    from talkinghead.data.datamodule import TalkingHeadDataModule

    data = TalkingHeadDataModule(str(tiny_corpus), mode="stage2", batch_size=4, pairs_per_clip=4)
    data.setup()
    batch = next(iter(data.val_dataloader()))
    renderer = MotionInputRenderer(model, PerspectiveCamera(), render_size=128, motion_size=64, rasterizer="torch")
    keys = ("beta", "pose", "lip_offsets")
    faces = [{key: batch[f"{role}_{key}"] for key in keys} for role in ("reference", "driven")]
    outer = MediaPipeFaceParser().parse(batch["reference_frame"], renderer.face_points(batch["alpha"], faces[0]))
    out = renderer(batch["alpha"], faces[0], faces[1], outer)
    flow = torch.nn.functional.interpolate(out["flow_prior"], size=256, mode="bilinear")
    warped = warp(batch["reference_frame"], flow)

    def psnr(image: torch.Tensor) -> float:
        return float(-10 * torch.log10((image - batch["driven_frame"]).square().mean()))

    assert psnr(warped) >= psnr(batch["reference_frame"]) + 5.0, (psnr(warped), psnr(batch["reference_frame"]))


@pytest.mark.parametrize("border_type", ["constant", "replicate"])
def test_the_cached_kernel_blur_equals_kornias_gaussian_blur(border_type):
    """The flow extension's blur (kernel built once, two depthwise convolutions) gives kornia's
    ``gaussian_blur2d`` exactly, for the sizes and σ the 3-D prior uses (at 128² and 256² render sizes)."""
    generator = torch.Generator().manual_seed(0)
    for shape, sigma in (((3, 2, 32, 32), 1.5), ((2, 1, 32, 32), 8.0), ((2, 1, 128, 128), 1.5), ((2, 2, 64, 64), 3.0)):
        image = torch.rand(shape, generator=generator)
        size = gaussian_kernel_size(sigma)
        expected = gaussian_blur2d(image, (size, size), (sigma, sigma), border_type=border_type)
        assert torch.equal(gaussian_blur(image, size, sigma, border_type), expected)
