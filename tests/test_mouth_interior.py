"""The drawn mouth interior: painted only inside a driven mouth that opens wider than the portrait's, identical to
the corpus renderer's, and composited by ``MeshToVideo(mouth_interior=True)`` without touching the rest.

The stage-2 networks are small random stand-ins (``tests.helpers.SMALL_MESH_TO_VIDEO``, 64² frames).
"""

import cv2
import numpy as np
import pytest
import torch

from talkinghead.data.synthetic.frame_renderer import MeshWarpRenderer
from talkinghead.face import PerspectiveCamera, apply_pose, builtin_morphable_model
from talkinghead.face.expression_basis import ARKIT_BLENDSHAPES
from talkinghead.models import MeshToVideo
from talkinghead.render import FaceParser, make_rasterizer
from talkinghead.render.mouth_interior import (
    FULL_COLOUR_LIPS_CHROMA,
    MouthInterior,
    interior_colour,
    lips_chroma,
    paint,
    toned_to_portrait,
)
from tests.helpers import SMALL_MESH_TO_VIDEO

JAW_OPEN = ARKIT_BLENDSHAPES.index("jawOpen")


class _HeadParser(FaceParser):
    """Stand-in parser: everything is head."""

    def parse(self, images, face_points):
        ones = torch.ones_like(images[:, :1])
        return torch.cat((0 * ones, ones, 0 * ones), dim=1)


@pytest.fixture(scope="module")
def model():
    return builtin_morphable_model()


def posed(model, jaw_open: float = 0.0, yaw: float = 0.0) -> torch.Tensor:
    """(1, N, 3) the built-in face, mouth opened by ``jawOpen``, turned by ``yaw`` radians."""
    beta = torch.zeros(1, 52)
    beta[0, JAW_OPEN] = jaw_open
    lips = torch.zeros(1, model.num_lip_vertices, 3)
    vertices = model.vertices(torch.zeros(1, model.num_identity), beta, lips)
    return apply_pose(vertices, torch.tensor([[0.0, yaw, 0.0, 0.0, 0.0, 0.0]]))


def whole_frame(painter, source, driven) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour and opacity over the whole 256² frame: the painted box composited over black and transparent."""
    colour, opacity, box = painter(source, driven)
    x0, y0, x1, y1 = box.tolist()
    assert colour.shape[-2:] == opacity.shape[-2:] == (y1 - y0, x1 - x0)
    frame = paint(torch.zeros(driven.shape[0], 3, 256, 256), colour, torch.ones_like(opacity), box)
    return frame, paint(torch.zeros(driven.shape[0], 1, 256, 256), opacity, torch.ones_like(opacity), box)


def test_interior_is_painted_only_inside_a_mouth_opened_wider_than_the_portraits(model):
    camera = PerspectiveCamera()
    painter = MouthInterior(model, camera, "torch")
    source, opened = posed(model), posed(model, jaw_open=1.0)
    colour, opacity = whole_frame(painter, source, opened)
    inner = camera.project(opened)[0, model.region("lip_inner"), :2].numpy()
    polygon = np.zeros((256, 256), np.uint8)
    cv2.fillPoly(polygon, [np.round(inner - 0.5).astype(np.int32)], 1)
    near = cv2.dilate(polygon, np.ones((7, 7), np.uint8)).astype(bool)  # the polygon and its blurred edge
    painted = opacity[0, 0].numpy()
    assert (painted > 0.99).sum() > 100 and painted[~near].max() == 0.0
    luminance = colour[0].mean(0).numpy()
    assert np.median(luminance[painted > 0.99]) < 0.2  # a dark cavity
    assert (luminance[painted > 0.99] > 0.7).sum() > 10  # with teeth
    assert painter(source, source)[1].max() == 0.0  # no wider than the portrait's own: nothing painted
    assert painter(opened, source)[1].max() == 0.0  # a mouth that closes shows the portrait's lips, not a cavity
    far = apply_pose(opened, torch.tensor([[0.0, 0.0, 0.0, 100.0, 0.0, 0.0]]))  # moved 1 m to the side
    assert painter(source, far)[1].numel() == 0  # lips outside the frame: an empty box


def test_teeth_under_the_upper_lip_and_a_cavity_dark_down_to_the_lower_lip():
    """Across the opening (lip coordinate 0 at the upper inner lip, 1 at the lower): teeth-white under the upper
    lip, the cavity's colour from the middle down to the lower lip, where no pale band is painted."""
    rows = torch.linspace(0.0, 1.0, 41)
    lip_coordinate = rows[None, None, :, None].expand(1, 1, 41, 20).contiguous()
    colour, coverage = interior_colour(lip_coordinate, torch.ones_like(lip_coordinate))
    luminance = colour[0].mean(0).mean(1)  # per row
    torch.testing.assert_close(coverage[..., 2:-2, 2:-2], torch.ones(1, 1, 37, 16))  # beyond the blur's reach
    assert (luminance[rows < 0.12] > 0.75).all()  # the teeth: TEETH_COLOR's mean is 0.84
    assert (luminance[rows > 0.4] < 0.1).all()  # the cavity: CAVITY_COLOR's mean is 0.073, shaded 0.7-1
    assert luminance[rows > 0.95].max() <= luminance[(rows > 0.4) & (rows < 0.6)].max()


@pytest.mark.parametrize("yaw", [0.0, 0.3])
def test_interior_is_the_corpus_renderers(model, yaw):
    """The painter and the corpus renderer paint the same interior, where the lips hide part of the fan too."""
    camera = PerspectiveCamera()
    source, opened = posed(model)[0], posed(model, jaw_open=0.7, yaw=yaw)
    field = MeshWarpRenderer(model, camera, make_rasterizer("torch", "cpu")).warp_field(source, opened)
    expected_colour, coverage = interior_colour(field.lip_coordinate, field.mouth)
    colour, opacity = whole_frame(MouthInterior(model, camera, "torch"), source[None], opened)
    torch.testing.assert_close(opacity, coverage * field.opening[:, None, None, None], atol=1e-5, rtol=0)
    painted = opacity > 1e-3
    torch.testing.assert_close(colour[painted.expand_as(colour)], expected_colour[painted.expand_as(colour)])


def test_mesh_to_video_composites_the_interior_and_changes_nothing_else():
    small = {**SMALL_MESH_TO_VIDEO, "face_parser": f"{__name__}._HeadParser"}
    networks = {}
    for drawn in (False, True):
        torch.manual_seed(0)
        networks[drawn] = MeshToVideo(**small, mouth_interior=drawn).eval()
    model = networks[True].inputs.model
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    lips = torch.zeros(1, model.num_lip_vertices, 3)
    reference = {"alpha": torch.zeros(1, model.num_identity), "beta": torch.zeros(1, 52), "pose": torch.zeros(1, 6)}
    reference["lip_offsets"] = lips
    opened = torch.zeros(2, 52)
    opened[1, JAW_OPEN] = 1.0
    driven = {"beta": opened, "pose": torch.zeros(2, 6), "lip_offsets": lips.expand(2, -1, -1)}
    plain = networks[False].synthesize(image, reference, driven)["frame"]
    drawn = networks[True].synthesize(image, reference, driven)["frame"]
    torch.testing.assert_close(drawn[0], plain[0], atol=1e-6, rtol=0)  # the portrait's own mouth: unchanged
    changed = (drawn[1] - plain[1]).abs().amax(0) > 1e-6
    assert 10 < changed.sum() < 0.05 * 64 * 64  # the opened mouth only
    assert drawn[1][:, changed].mean() < plain[1][:, changed].mean()  # darker: the cavity


def test_lips_chroma_is_the_mean_chroma_of_the_box_around_the_lips():
    """A grey portrait with one coloured 10 × 20 px patch: the box that holds it reads the patch's chroma (0.5),
    a box twice as tall half of it, a box beside it none."""
    portrait = torch.full((1, 3, 64, 64), 0.4)
    portrait[0, :, 20:30, 10:30] = torch.tensor([0.7, 0.3, 0.2])[:, None, None]
    patch = torch.tensor([[[10.0, 20.0], [30.0, 30.0]]])  # corner points of the patch (pixel edges)
    taller = torch.tensor([[[10.0, 10.0], [30.0, 30.0]]])
    beside = torch.tensor([[[40.0, 20.0], [60.0, 30.0]]])
    measured = lips_chroma(portrait.expand(3, -1, -1, -1), torch.cat((patch, taller, beside)))
    torch.testing.assert_close(measured, torch.tensor([0.5, 0.25, 0.0]))


def test_the_interior_keeps_its_colour_on_coloured_lips_and_turns_grey_on_grey_ones():
    """Toned to lips as colourful as ``FULL_COLOUR_LIPS_CHROMA`` or more the painted colour is unchanged to the bit;
    to grey lips (chroma 0) every channel is the luma; half-way, half the chroma around the same luma."""
    colour, _ = interior_colour(torch.linspace(0, 1, 32).view(1, 1, 32, 1).expand(1, 1, 32, 8), torch.ones(1, 1, 32, 8))
    colour = colour.expand(3, -1, -1, -1)
    toned = toned_to_portrait(colour, torch.tensor([FULL_COLOUR_LIPS_CHROMA * 3, 0.0, FULL_COLOUR_LIPS_CHROMA / 2]))
    assert torch.equal(toned[0], colour[0])
    luma = 0.299 * colour[1, 0] + 0.587 * colour[1, 1] + 0.114 * colour[1, 2]
    torch.testing.assert_close(toned[1], luma.expand(3, -1, -1))
    torch.testing.assert_close(toned[2], (colour[2] + luma) / 2)
    spread = lambda image: (image.amax(0) - image.amin(0)).mean()  # noqa: E731
    assert spread(colour[0]) > 0.05 and spread(toned[1]) < 1e-6


def test_the_painter_tones_the_interior_to_the_portraits_lips(model):
    """MouthInterior given the portraits: a grey one gets a grey interior, a coloured one the interior painted
    without them; the opacity does not change."""
    camera = PerspectiveCamera()
    painter = MouthInterior(model, camera, "torch")
    source, opened = posed(model).expand(2, -1, -1), posed(model, jaw_open=1.0).expand(2, -1, -1)
    portraits = torch.full((2, 3, 256, 256), 0.5)
    portraits[1, 0] = 0.8  # reddish
    plain, plain_opacity, box = painter(source, opened)
    toned, opacity, toned_box = painter(source, opened, portraits)
    assert torch.equal(box, toned_box) and torch.equal(opacity, plain_opacity)
    painted = plain_opacity[0, 0] > 0.5
    assert (plain[0].amax(0) - plain[0].amin(0))[painted].mean() > 0.05
    assert (toned[0].amax(0) - toned[0].amin(0))[painted].abs().max() < 1e-6
    assert torch.equal(toned[1], plain[1])


def test_mesh_to_video_tones_the_interior_to_its_reference():
    """With a grey reference the pixels the interior covers fully are grey; with a coloured one they are not."""
    small = {**SMALL_MESH_TO_VIDEO, "face_parser": f"{__name__}._HeadParser"}
    torch.manual_seed(0)
    network = MeshToVideo(**small, mouth_interior=True).eval()
    model = network.inputs.model
    lips = torch.zeros(1, model.num_lip_vertices, 3)
    reference = {"alpha": torch.zeros(1, model.num_identity), "beta": torch.zeros(1, 52), "pose": torch.zeros(1, 6)}
    reference["lip_offsets"] = lips
    opened = torch.zeros(1, 52)
    opened[0, JAW_OPEN] = 1.0
    driven = {"beta": opened, "pose": torch.zeros(1, 6), "lip_offsets": lips}
    grey = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(1)).expand(1, 3, 64, 64)
    coloured = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    spreads = []
    for image in (grey, coloured):
        faces = {key: value for key, value in reference.items() if key != "alpha"}
        inputs = network.render_inputs(image, reference["alpha"], faces, driven)
        covered = inputs["interior_opacity"][0, 0] > 0.999
        assert covered.sum() >= 4
        colour = inputs["interior_colour"][0][:, covered]
        spreads.append(float((colour.amax(0) - colour.amin(0)).max()))
    assert spreads[0] < 1e-6 < 0.05 < spreads[1]
