"""MorphableModel implements Eq. 1 / Eq. 4 exactly; FaceVerse files load behind the same interface."""

import os

import numpy as np
import pytest
import torch

from talkinghead.face.expression_basis import ARKIT_BLENDSHAPES
from talkinghead.face.faceverse import FaceVerseFormatError, load_faceverse
from talkinghead.face.morphable_model import MorphableModel

N, K_ID, K_EXP = 30, 5, 52


def _stand_in_arrays(seed: int = 0) -> dict:
    """A small stand-in with FaceVerse's keys and layouts (the real file is not redistributable)."""
    rng = np.random.default_rng(seed)
    return {
        "meanshape": rng.normal(size=(1, 3 * N)),
        "idBase": rng.normal(size=(3 * N, K_ID)),
        "exBase": rng.normal(size=(3 * N, K_EXP)),
        "tri": rng.integers(0, N, size=(40, 3)),
        "keypoints": np.arange(68) % N,
        "exp_name_list": np.array(ARKIT_BLENDSHAPES),
        "meantex": rng.uniform(size=(1, 3 * N)),
    }


def _model() -> MorphableModel:
    g = torch.Generator().manual_seed(1)
    return MorphableModel(
        mean_shape=torch.randn(N, 3, generator=g),
        identity_basis=torch.randn(K_ID, N, 3, generator=g),
        expression_basis=torch.randn(K_EXP, N, 3, generator=g),
        triangles=torch.randint(0, N, (40, 3), generator=g),
        expression_names=ARKIT_BLENDSHAPES,
        lip_ids=torch.tensor([3, 4, 5]),
        regions={"eye_left": torch.tensor([7, 8])},
    )


def test_vertices_equal_equation_1_and_4():
    model = _model()
    alpha, beta, offsets = torch.randn(2, K_ID), torch.randn(2, 7, K_EXP), torch.randn(2, 7, 3, 3)
    got = model.vertices(alpha[:, None], beta, offsets)
    flat = model.mean_shape.reshape(-1) + alpha[:, None] @ model.U_id.T + beta @ model.U_exp.T
    expected = flat.reshape(2, 7, N, 3).clone()
    expected[:, :, [3, 4, 5]] += offsets
    assert got.shape == (2, 7, N, 3)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_neutral_is_mean_shape_and_regions_resolve():
    model = _model()
    torch.testing.assert_close(model.vertices(), model.mean_shape)
    assert model.region("lips").tolist() == [3, 4, 5]
    assert model.region("eye_left").tolist() == [7, 8]
    assert model.expression_index("jawOpen") == ARKIT_BLENDSHAPES.index("jawOpen")
    with pytest.raises(KeyError, match="unknown region"):
        model.region("tail")


def test_state_dict_round_trip_preserves_vertices():
    model, other = (
        _model(),
        MorphableModel(
            torch.zeros(N, 3),
            torch.zeros(K_ID, N, 3),
            torch.zeros(K_EXP, N, 3),
            torch.zeros(40, 3),
            ARKIT_BLENDSHAPES,
            torch.zeros(3),
            {"eye_left": torch.zeros(2)},
        ),
    )
    other.load_state_dict(model.state_dict())
    beta = torch.rand(K_EXP)
    torch.testing.assert_close(other.vertices(beta=beta), model.vertices(beta=beta))


def test_faceverse_stand_in_loads(tmp_path):
    arrays = _stand_in_arrays()
    path = tmp_path / "faceverse_stand_in.npy"
    np.save(path, arrays, allow_pickle=True)
    model = load_faceverse(path, scale=0.1)
    assert (model.num_vertices, model.num_identity, model.num_expression) == (N, K_ID, K_EXP)
    assert model.lip_ids.tolist() == (np.arange(48, 68) % N).tolist()
    alpha, beta = torch.randn(K_ID, dtype=torch.float64), torch.rand(K_EXP, dtype=torch.float64)
    flat = arrays["meanshape"][0] + arrays["idBase"] @ alpha.numpy() + arrays["exBase"] @ beta.numpy()
    expected = torch.from_numpy(flat.reshape(N, 3) * 0.1).float()
    torch.testing.assert_close(model.vertices(alpha, beta), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("idBase"), "missing key 'idBase'"),
        (lambda d: d.update(exBase=np.zeros((3 * N + 3, K_EXP))), "key 'exBase'"),
        (lambda d: d.update(tri=np.zeros((10, 4))), "key 'tri'"),
        (lambda d: d.update(meanshape=np.zeros(3 * N + 1)), "key 'meanshape'"),
        (lambda d: d.update(keypoints=np.array([N + 5])), "key 'keypoints'"),
    ],
)
def test_faceverse_format_errors_name_the_key(tmp_path, change, message):
    arrays = _stand_in_arrays()
    change(arrays)
    path = tmp_path / "bad.npy"
    np.save(path, arrays, allow_pickle=True)
    with pytest.raises(FaceVerseFormatError, match=message):
        load_faceverse(path)


def test_faceverse_not_a_dict(tmp_path):
    path = tmp_path / "plain.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(FaceVerseFormatError, match="dict"):
        load_faceverse(path)
    with pytest.raises(FaceVerseFormatError, match="not found"):
        load_faceverse(tmp_path / "missing.npy")


class _Payload:
    """Unpickles by calling ``os.mkdir`` on a marker: what a crafted model file could run on load."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_a_faceverse_file_that_would_build_other_objects_is_refused_not_run(tmp_path):
    """A FaceVerse dict pickled with an extra object whose unpickling calls a function: refused by name before
    anything runs; the same dict without it loads."""
    arrays, marker = _stand_in_arrays(), tmp_path / "ran"
    path = tmp_path / "crafted.npy"
    np.save(path, {**arrays, "extra": _Payload(marker)}, allow_pickle=True)
    with pytest.raises(
        FaceVerseFormatError, match=r"not a readable \.npy file \(it would build \w+\.mkdir, not only arrays\)"
    ):
        load_faceverse(path)
    assert not marker.exists()
    np.save(path, arrays, allow_pickle=True)
    assert load_faceverse(path).num_vertices == N
