"""The built-in MediaPipe-topology morphable model: regions, blendshapes, identity basis, mesh."""

from collections import Counter

import numpy as np
import pytest
import torch

from talkinghead.face.builtin import builtin_identity_std, builtin_morphable_model
from talkinghead.face.canonical_mesh import load_canonical_mesh
from talkinghead.face.expression_basis import (
    ARKIT_BLENDSHAPES,
    LIP_BLENDSHAPES,
    OTHER_BLENDSHAPES,
    ZERO_BLENDSHAPES,
)
from talkinghead.face.regions import face_regions, mirror_permutation

NEUTRAL_LIP_GAP = 0.58  # 3-D distance of vertices 13 and 14 (0.55 cm in y alone)
JAW_OPEN_LIP_GAP = 2.63  # measured, vertex 13 to 14 at jawOpen = 1
BLINK_MAX_LID_GAP = 0.05  # largest upper/lower lid-margin pair distance at eyeBlink = 1 (measured 0.033)


@pytest.fixture(scope="module")
def model():
    return builtin_morphable_model()


@pytest.fixture(scope="module")
def basis(model):
    return {name: model.expression_basis[i].double().numpy() for i, name in enumerate(ARKIT_BLENDSHAPES)}


@pytest.fixture(scope="module")
def regions():
    return face_regions()


def _posed(model, **weights) -> np.ndarray:
    beta = torch.zeros(model.num_expression)
    for name, value in weights.items():
        beta[model.expression_index(name)] = value
    return model.vertices(beta=beta).double().numpy()


def _pair_gaps(vertices, upper, lower) -> np.ndarray:
    return np.linalg.norm(vertices[upper[1:-1]] - vertices[lower[1:-1]], axis=1)


def _normal_z(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    corners = vertices[..., triangles, :]
    normal = np.cross(corners[..., 1, :] - corners[..., 0, :], corners[..., 2, :] - corners[..., 0, :])
    return normal[..., 2] / np.linalg.norm(normal, axis=-1)


def test_names_and_split():
    assert len(ARKIT_BLENDSHAPES) == 52 == len(set(ARKIT_BLENDSHAPES))
    assert ARKIT_BLENDSHAPES[0] == "browDownLeft" and ARKIT_BLENDSHAPES[-1] == "tongueOut"
    assert set(LIP_BLENDSHAPES) | set(OTHER_BLENDSHAPES) == set(ARKIT_BLENDSHAPES)
    assert not set(LIP_BLENDSHAPES) & set(OTHER_BLENDSHAPES)
    assert (len(LIP_BLENDSHAPES), len(OTHER_BLENDSHAPES)) == (28, 24)
    assert {"jawOpen", "mouthClose", "mouthFunnel", "cheekPuff"} <= set(LIP_BLENDSHAPES)


def test_regions_sides_and_chains(regions):
    vertices = load_canonical_mesh().vertices
    assert vertices[regions["eye_left"], 0].min() > 1.5 and vertices[regions["eye_right"], 0].max() < -1.5
    assert vertices[regions["brow_left"], 0].min() > 1.0
    for name in ("lip_inner", "lip_outer", "eye_left", "eye_right"):
        upper, lower = regions[f"{name}_upper"], regions[f"{name}_lower"]
        assert upper[0] == lower[0] and upper[-1] == lower[-1]
        assert vertices[upper[0], 0] < vertices[upper[-1], 0]
        assert vertices[upper[1:-1], 1].mean() > vertices[lower[1:-1], 1].mean()
        assert sorted(np.r_[upper, lower[1:-1]]) == sorted(regions[name])
    assert len(regions["lip_inner"]) == len(regions["lip_outer"]) == 20 and len(regions["eye_left"]) == 16
    assert 13 in regions["lip_inner_upper"] and 14 in regions["lip_inner_lower"]


def test_model_shapes(model):
    assert model.num_vertices == 468 and model.num_expression == 52 and model.num_identity == 40
    assert model.num_lip_vertices == 40 and model.landmark_ids.tolist() == list(range(468))
    assert model.region("eye_left").tolist() == face_regions()["eye_left"].tolist()


def test_fresh_module_each_call(model):
    other = builtin_morphable_model()
    assert other is not model
    other.mean_shape[0, 0] += 1.0
    assert float(model.mean_shape[0, 0] - other.mean_shape[0, 0]) == pytest.approx(-1.0)


def test_jaw_open_opens_the_inner_lip_gap(model, regions):
    neutral, opened = _posed(model), _posed(model, jawOpen=1.0)
    gap = np.linalg.norm(opened[13] - opened[14])
    assert np.linalg.norm(neutral[13] - neutral[14]) == pytest.approx(NEUTRAL_LIP_GAP, abs=0.01)
    assert gap == pytest.approx(JAW_OPEN_LIP_GAP, abs=0.05)
    growth = (
        _pair_gaps(opened, regions["lip_inner_upper"], regions["lip_inner_lower"]).mean()
        - _pair_gaps(neutral, regions["lip_inner_upper"], regions["lip_inner_lower"]).mean()
    )
    assert 1.5 < growth < 2.5
    assert np.abs(opened[10] - neutral[10]).max() < 1e-6  # forehead still
    closed = _posed(model, jawOpen=1.0, mouthClose=1.0)
    assert np.linalg.norm(closed[13] - closed[14]) == pytest.approx(NEUTRAL_LIP_GAP, abs=0.1)
    assert np.linalg.norm(closed[152] - opened[152]) < 1e-6  # the chin stays down


def test_eye_blink_closes_one_eye(model, regions):
    neutral, blink = _posed(model), _posed(model, eyeBlinkLeft=1.0)
    assert _pair_gaps(neutral, regions["eye_left_upper"], regions["eye_left_lower"]).mean() > 0.4
    assert _pair_gaps(blink, regions["eye_left_upper"], regions["eye_left_lower"]).max() < BLINK_MAX_LID_GAP
    assert np.abs(blink - neutral)[regions["eye_right"]].max() < 1e-6
    assert np.abs(blink - neutral)[neutral[:, 0] < 0].max() < 1e-6


@pytest.mark.parametrize("name", ARKIT_BLENDSHAPES)
def test_each_blendshape_magnitude(basis, name):
    largest = np.linalg.norm(basis[name], axis=1).max()
    if name in ZERO_BLENDSHAPES:
        assert largest == 0.0
    else:
        assert 0.1 < largest < 3.0


def test_blendshapes_stay_in_their_region(basis, regions):
    vertices = load_canonical_mesh().vertices
    lips = np.r_[regions["lip_outer"], regions["lip_inner"]]
    upper_face = np.r_[regions["eye_left"], regions["eye_right"], regions["brow_left"], regions["brow_right"]]
    for name, shape in basis.items():
        moved = np.linalg.norm(shape, axis=1)
        if name.startswith(("eye", "brow")):
            assert moved[lips].max() < 1e-6, name
        if name.startswith(("mouth", "jaw")):
            assert moved[upper_face].max() < 1e-6, name
        if name.endswith("Left") and name not in ("mouthLeft", "jawLeft"):
            assert moved[vertices[:, 0] < -2.0].max() < 1e-6, name


def test_left_right_mirror(basis):
    vertices = load_canonical_mesh().vertices
    mirror = mirror_permutation(vertices)
    assert np.abs(vertices[mirror] * [-1, 1, 1] - vertices).max() < 1e-6

    def mirrored(shape):
        return shape[mirror] * np.array([-1.0, 1.0, 1.0])

    pairs = [n for n in ARKIT_BLENDSHAPES if n.endswith("Left")]
    assert len(pairs) == 20
    for left in pairs:
        assert np.abs(mirrored(basis[left]) - basis[left[:-4] + "Right"]).max() < 1e-5, left
    for name in ARKIT_BLENDSHAPES:
        if not name.endswith(("Left", "Right")):
            assert np.abs(mirrored(basis[name]) - basis[name]).max() < 1e-5, name


def test_identity_basis_orthonormal_and_rigid_free(model):
    u = model.U_id.double()
    assert model.num_identity >= 20
    assert torch.allclose(u.T @ u, torch.eye(model.num_identity, dtype=torch.float64), atol=1e-5)
    assert model.identity_basis.double().sum(dim=1).abs().max() < 1e-4  # no translation component
    std = builtin_identity_std().numpy()
    assert std.shape == (40,) and (np.diff(std) <= 0).all() and std[-1] > 0.05 and std[0] < 5.0


def test_identity_samples_do_not_flip_triangles(model):
    vertices = model.mean_shape.double().numpy()
    triangles = model.triangles.numpy()
    basis = model.identity_basis.double().numpy()
    std = builtin_identity_std().double().numpy()
    neutral = _normal_z(vertices, triangles)
    for k in range(model.num_identity):
        for sign in (-3.0, 3.0):
            posed = vertices + sign * std[k] * basis[k]
            assert (_normal_z(posed, triangles)[neutral > 0.3] > 0).all(), (k, sign)
    alpha = np.random.default_rng(0).normal(size=(100, model.num_identity)) * std
    faces = vertices + np.einsum("bk,knc->bnc", alpha, basis)
    assert (_normal_z(faces, triangles)[:, neutral > 0.5] > 0).all()
    rms = np.sqrt(((faces - vertices) ** 2).sum(-1).mean())
    assert 0.2 < rms < 0.5


def test_mouth_is_a_hole_and_the_mesh_stays_manifold(model, regions):
    triangles = model.triangles.numpy()
    assert len(triangles) == 880
    assert np.array_equal(np.unique(triangles), np.arange(468))
    edges = Counter(tuple(sorted(e)) for t in triangles.tolist() for e in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])))
    assert max(edges.values()) == 2
    inner = regions["lip_inner"].tolist()
    for a, b in zip(inner, inner[1:] + inner[:1], strict=True):
        assert edges[tuple(sorted((a, b)))] == 1
    assert not [
        e
        for e in edges
        if e[0] in inner and e[1] in inner and abs(inner.index(e[0]) - inner.index(e[1])) not in (1, 19)
    ]
    assert (13, 14) not in edges
