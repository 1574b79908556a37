"""Portrait preparation (MediaPipe + fit) and mesh-warp frames on scikit-image's astronaut photo."""

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from skimage import data

from talkinghead.data.synthetic.frame_renderer import MeshWarpRenderer
from talkinghead.data.synthetic.portrait_variation import portrait_variant
from talkinghead.face import PerspectiveCamera, apply_pose, builtin_identity_std, builtin_morphable_model
from talkinghead.face.detection import NoFaceError, detect_face_landmarks
from talkinghead.face.portrait import fit_portrait, prepare_portrait
from talkinghead.face.regions import mirror_permutation
from talkinghead.render import make_rasterizer

NOSE_TIP = 1


@pytest.fixture(scope="module")
def model():
    return builtin_morphable_model()


@pytest.fixture(scope="module")
def camera():
    return PerspectiveCamera()


@pytest.fixture(scope="module")
def portrait(model):
    return prepare_portrait(data.astronaut(), model=model)


@pytest.fixture(scope="module")
def renderer(model, camera):
    return MeshWarpRenderer(model, camera, make_rasterizer("torch"))


def driven_mesh(model, portrait, expression=None, rotation_deg=(0.0, 0.0, 0.0), alpha=None):
    """The portrait's fitted mesh with some blendshapes set and the pose rotated by (pitch, yaw, roll) degrees."""
    beta = portrait.beta.clone()
    for name, weight in (expression or {}).items():
        beta[model.expression_index(name)] = weight
    pose = portrait.pose.clone()
    pose[:3] += torch.tensor([math.radians(angle) for angle in rotation_deg])
    return apply_pose(model.vertices(portrait.alpha if alpha is None else alpha, beta), pose)


def test_astronaut_fit_residual_is_small(portrait):
    # RMS reprojection error of the fitted mesh over all 468 FaceMesh landmarks of the 256² crop.
    assert portrait.image.shape == (256, 256, 3) and portrait.landmarks.shape == (468, 2)
    assert portrait.fit_residual < 3.0
    height = portrait.landmarks[:, 1].ptp()
    assert 120 < height < 180  # framed like the camera's canonical face (about 150 px tall)
    assert portrait.person_mask.shape == (256, 256) and 0.2 < portrait.person_mask.mean() < 0.9


def test_the_portraits_mesh_has_its_lips_where_the_photo_has_them(model, camera, portrait):
    """α, β and P_ref leave the astronaut's lips 1.8 px (RMS) off the photo's; O_lip takes up the rest, so the mesh
    stage 2 warps from (the synthetic corpus' frames and the pipeline's reference) opens as far as the photo."""
    lips = model.lip_ids
    photo = torch.from_numpy(portrait.landmarks)[lips]
    fitted = camera.project(portrait.source_vertices(model)[None])[0, lips, :2]
    blendshapes = apply_pose(model.vertices(portrait.alpha, portrait.beta), portrait.pose)
    without = camera.project(blendshapes[None])[0, lips, :2]
    assert (fitted - photo).norm(dim=-1).max() < 0.01
    assert (without - photo).norm(dim=-1).square().mean().sqrt() > 1.0
    assert portrait.lip_offsets.shape == (model.num_lip_vertices, 3)


def test_no_face_raises():
    with pytest.raises(NoFaceError):
        detect_face_landmarks(np.full((128, 128, 3), 127, dtype=np.uint8))


def test_driven_equal_to_source_returns_the_portrait(model, portrait, renderer):
    source = portrait.source_vertices(model)
    image = portrait.image_tensor()
    frame = renderer.render(image, source, source[None])[0]
    face = renderer.warp_field(source, source[None]).face[0, 0] > 0
    assert (frame - image).abs().mean(0)[face].mean() < 2.0 / 255.0
    assert (frame - image).abs().mean() < 2.0 / 255.0


def _polygon_mask(points: np.ndarray, size: int = 256) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.uint8)
    cv2.fillPoly(mask, [np.round((points - 0.5) * 16).astype(np.int32)], 1, shift=4)
    return mask.astype(bool)


def test_mouth_opens_with_jaw_open_and_the_cavity_is_dark(model, portrait, renderer, camera):
    source = portrait.source_vertices(model)
    image = portrait.image_tensor()
    opened = driven_mesh(model, portrait, {"jawOpen": 1.0})
    frame = renderer.render(image, source, opened[None])[0]
    screen = camera.project(opened)[:, :2].numpy()
    outer = _polygon_mask(screen[model.region("lip_outer").numpy()])
    inner = _polygon_mask(screen[model.region("lip_inner").numpy()])
    rows, cols = np.nonzero(outer)
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    assert (frame - image).abs()[:, box[0], box[1]].mean() > 0.1
    # Cavity: the middle of the opening, away from the teeth band; lips: between the outer and inner contour.
    lip_coordinate = renderer.warp_field(source, opened[None]).lip_coordinate[0, 0].numpy()
    cavity = inner & (lip_coordinate > 0.4) & (lip_coordinate < 0.8)
    lips = outer & ~inner
    luminance = frame.mean(0).numpy()
    assert cavity.sum() > 50
    assert luminance[cavity].mean() < 0.5 * luminance[lips].mean()


def test_face_follows_a_yaw_marker(model, portrait, renderer, camera):
    """A magenta dot painted on the portrait's nose tip lands on the driven nose tip's projection."""
    source = portrait.source_vertices(model)
    turned = driven_mesh(model, portrait, rotation_deg=(0.0, 10.0, 0.0))
    source_tip = camera.project(source[NOSE_TIP])[:2]
    driven_tip = camera.project(turned[NOSE_TIP])[:2]
    image = portrait.image_tensor()
    v, u = torch.meshgrid(torch.arange(256) + 0.5, torch.arange(256) + 0.5, indexing="ij")
    dot = ((u - source_tip[0]).square() + (v - source_tip[1]).square()) < 2.0**2
    image[:, dot] = torch.tensor([1.0, 0.0, 1.0])[:, None]
    frame = renderer.render(image, source, turned[None])[0]
    magenta = (frame[0] > 0.8) & (frame[1] < 0.2) & (frame[2] > 0.8)
    assert magenta.sum() > 4
    centre = torch.stack((u[magenta].mean(), v[magenta].mean()))
    assert driven_tip[0] - source_tip[0] > 3.0  # +10° yaw moves the nose to the image right
    assert torch.linalg.norm(centre - driven_tip) < 1.5


def test_torso_stays_still_under_head_rotation(model, portrait, renderer):
    source = portrait.source_vertices(model)
    image = portrait.image_tensor()
    moved = torch.stack(
        [driven_mesh(model, portrait, rotation_deg=angles) for angles in ((0, 15, 0), (-10, 0, 0), (0, 0, 8))]
    )
    frames = renderer.render(image, source, moved)
    assert (frames[:, :, 244:] - image[:, 244:]).abs().max() < 1e-4  # the chin is at row 215
    assert (frames[:, :, :200] - image[:, :200]).abs().mean() > 0.01  # while the head did move


def test_mesh_landmarks_agree_with_the_flow(model, portrait, renderer, camera):
    """At a driven landmark's projection, the warp samples the portrait at the source landmark's projection."""
    source = portrait.source_vertices(model)
    noise = torch.randn(model.num_identity, generator=torch.Generator().manual_seed(3))
    alpha = portrait.alpha + builtin_identity_std() * noise
    driven = driven_mesh(model, portrait, {"jawOpen": 0.5, "mouthSmileLeft": 0.6}, (5.0, 10.0, -4.0), alpha)
    field = renderer.warp_field(source, driven[None])
    # Visible landmarks inside the mesh (nose, eye and mouth corners, lips, brows, cheeks, forehead, chin): the
    # outermost ring of pixels (about 3 px) blends into the smooth outside flow by design, and the upper inner
    # lip (13) hides behind the upper lip when the head pitches down, so neither is checked.
    ids = torch.tensor([NOSE_TIP, 4, 33, 133, 263, 362, 61, 291, 0, 17, 14, 105, 334, 50, 280, 151, 199])
    driven_points = camera.project(driven[ids])[:, :2]
    grid = (driven_points * (2.0 / 256.0) - 1.0).view(1, 1, -1, 2)
    sampled = F.grid_sample(field.sample.permute(0, 3, 1, 2), grid, mode="bilinear", align_corners=False)
    sampled = sampled.view(2, -1).T
    expected = camera.project(source[ids])[:, :2]
    assert (sampled - expected).norm(dim=1).max() < 1.0


def test_horizontal_flip_mirrors_the_landmarks(model, portrait):
    flipped = fit_portrait(
        *portrait_variant(
            portrait,
            np.random.default_rng(0),
            model=model,
            flip_probability=1.0,
            max_scale=0.0,
            max_shift=0.0,
            max_rotation_deg=0.0,
            background_probability=0.0,
        ),
        model,
    )
    permutation = mirror_permutation(model.mean_shape.numpy())
    expected = np.stack((256.0 - portrait.landmarks[:, 0], portrait.landmarks[:, 1]), axis=1)
    np.testing.assert_allclose(flipped.landmarks[permutation], expected, atol=1e-4)
    np.testing.assert_array_equal(flipped.person_mask, portrait.person_mask[:, ::-1])
    detected = detect_face_landmarks(flipped.image)[:, :2]
    assert np.abs(detected - flipped.landmarks).mean() < 2.0  # MediaPipe agrees with the mirrored numbering
    assert flipped.fit_residual < 3.0
    assert abs(float(flipped.pose[1] + portrait.pose[1])) < math.radians(3.0)  # yaw mirrors
