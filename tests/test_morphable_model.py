"""MorphableModel implements Eq. 1 / Eq. 4 exactly; FaceVerse files load behind the same interface."""

import os
import pickle
import struct

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


class _ForgedDtype:
    """A record dtype with one object field whose pickled state marks it as holding no objects."""

    def __reduce__(self):
        return (np.dtype, ("V8", False, True), (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0))


class _ForgedArray:
    """One element of :class:`_ForgedDtype` whose 8 data bytes would be read as an object pointer."""

    def __reduce__(self):
        state = (1, (1,), _ForgedDtype(), False, struct.pack("<Q", 0x4141414141414141))
        return (np.core.multiarray._reconstruct, (np.ndarray, (0,), b"b"), state)


def _write_pickled_npy(path, content) -> None:
    """``content`` pickled after a 0-d object-array header, as ``np.save`` writes a dict."""
    with open(path, "wb") as stream:
        np.lib.format.write_array_header_1_0(stream, {"descr": "|O", "fortran_order": False, "shape": ()})
        stream.write(pickle.dumps(content, protocol=3))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(exp_name_list=_ForgedArray()), r"an array of dtype \[\('a', 'O'\)\] with altered flags"),
        (lambda d: d.update(exp_name_list=5), "key 'exp_name_list' must hold blendshape names, got int"),
        (lambda d: d.update(tri=np.full((2, 3), "x")), "key 'tri' must hold numbers, got an array of <U1"),
        (lambda d: d.update(idBase=np.array([None, "a"], dtype=object)), "key 'idBase' must hold numbers"),
    ],
    ids=["forged dtype", "names not a list", "tri of strings", "idBase of objects"],
)
def test_a_faceverse_file_with_forged_or_wrongly_typed_content_is_one_error(tmp_path, change, message):
    """A dtype whose pickled flags hide an object field (it made the process crash reading the field's bytes as a
    pointer) and keys of the wrong type: each a :class:`FaceVerseFormatError` naming it, nothing else raised."""
    arrays = _stand_in_arrays()
    change(arrays)
    path = tmp_path / "model.npy"
    _write_pickled_npy(path, arrays)
    with pytest.raises(FaceVerseFormatError, match=message):
        load_faceverse(path)


def test_a_faceverse_pickle_of_the_wrong_shape_is_one_error_and_old_protocols_load(tmp_path):
    """A pickle that builds state onto a dict (``AttributeError`` inside the unpickler) is a one-line
    :class:`FaceVerseFormatError`; a genuine dict pickled with protocol 2 (numpy before 1.17: bytes through
    ``_codecs.encode``) or 5 (out-of-band buffers, ``_frombuffer``) loads like the one ``np.save`` writes today."""
    path = tmp_path / "model.npy"
    with open(path, "wb") as stream:
        np.lib.format.write_array_header_1_0(stream, {"descr": "|O", "fortran_order": False, "shape": ()})
        stream.write(b"\x80\x03}q\x00}q\x01b.")  # an empty dict, then BUILD with a dict as its state
    with pytest.raises(FaceVerseFormatError, match="not a readable .npy file"):
        load_faceverse(path)
    expected = load_faceverse(_saved(tmp_path / "today.npy", _stand_in_arrays())).vertices()
    for protocol in (2, 5):
        with open(path, "wb") as stream:
            np.lib.format.write_array_header_1_0(stream, {"descr": "|O", "fortran_order": False, "shape": ()})
            stream.write(pickle.dumps(np.array(_stand_in_arrays(), dtype=object), protocol=protocol))
        torch.testing.assert_close(load_faceverse(path).vertices(), expected, rtol=0, atol=0)


def _saved(path, arrays):
    np.save(path, arrays, allow_pickle=True)
    return path
