"""FaceVerse, the paper's morphable model (§3.1, §4.2), loaded from the user's own file.

FaceVerse is not redistributable, so the package ships none; the user passes the path of the
official ``.npy`` dict (``faceverse_simple_v2.npy`` or similar). Such a file is a pickle; it is unpickled with only
numpy's array and dtype constructors allowed, so a file that would build any other Python object is refused
instead of run. Keys used:

========================  ===========================  ==========================================
key                       shape                        meaning
========================  ===========================  ==========================================
``meanshape``             (N, 3) or (1, 3N) or (3N,)   mean shape S̄
``idBase``                (3N, K_id)                   identity basis U_id (150 in FaceVerse)
``exBase``                (3N, 52)                     expression basis U_exp
``tri``                   (F, 3)                       triangles (zero-based vertex ids)
``keypoints``             (68,) (any 1-D int array)    landmark vertex ids; 48–67 are the mouth
``exp_name_list``         52 strings (optional)        blendshape names in basis order
========================  ===========================  ==========================================

The lip vertices that carry O_lip default to the 20 mouth keypoints (68-point convention) and can be
given explicitly with ``lip_ids``. ``scale`` converts the file's units to centimetres so the camera of
:mod:`talkinghead.face.camera` frames the face as it frames the built-in model.
"""

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from talkinghead.face.expression_basis import ARKIT_BLENDSHAPES
from talkinghead.face.morphable_model import MorphableModel

REQUIRED_KEYS = ("meanshape", "idBase", "exBase", "tri", "keypoints")
NAME_KEYS = ("exp_name_list", "exp_name_list_52")


class FaceVerseFormatError(ValueError):
    """The file is not a FaceVerse model dict; the message names the offending key."""


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, dtypes and plain containers (dict, list, str, numbers) only: numpy's array, dtype and
    scalar constructors, and the byte-string helpers that older (protocol 2) and newer (protocol 5) pickles use."""

    ALLOWED = (
        {
            (module, name)
            for module in ("numpy.core.multiarray", "numpy._core.multiarray")
            for name in ("_reconstruct", "scalar")
        }
        | {(module, "_frombuffer") for module in ("numpy.core.numeric", "numpy._core.numeric")}
        | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}
    )

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it would build {module}.{name}, not only arrays")
        return super().find_class(module, name)


def _check_arrays(content, depth: int = 0) -> None:
    """Refuse an array whose dtype's flags differ from those of the same dtype built afresh (a pickle can set them,
    and an object array marked as holding none would read raw bytes as object pointers) before any element of it is
    read; then the same for the elements of object arrays and containers."""
    if depth > 64:
        raise ValueError("nested too deeply")
    if isinstance(content, np.ndarray):
        dtype = content.dtype
        fresh = np.dtype(dtype.descr) if dtype.fields is not None else np.dtype(dtype.str)
        if dtype.flags != fresh.flags or dtype.itemsize != fresh.itemsize:
            raise ValueError(f"an array of dtype {dtype} with altered flags")
        items = content.ravel().tolist() if dtype.hasobject else ()
    elif isinstance(content, dict):
        items = [*content.keys(), *content.values()]
    elif isinstance(content, (list, tuple)):
        items = content
    else:
        return
    for item in items:
        _check_arrays(item, depth + 1)


def _load_npy(path: Path):
    """The content of a ``.npy`` file; an object array goes through :class:`_ArrayUnpickler` and
    :func:`_check_arrays`."""
    with open(path, "rb") as stream:
        major, _ = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        _, _, dtype = read_header(stream)
        if dtype.hasobject:
            content = _ArrayUnpickler(stream).load()
            _check_arrays(content)
            return content
    return np.load(path, allow_pickle=False)


def _read_dict(path: Path) -> dict:
    if not path.is_file():
        raise FaceVerseFormatError(f"FaceVerse model file not found: {path}")
    try:
        content = _load_npy(path)
    except Exception as error:  # a malformed pickle raises TypeError, AttributeError, KeyError, … as well
        raise FaceVerseFormatError(f"{path} is not a readable .npy file ({error or type(error).__name__})") from None
    if isinstance(content, np.ndarray) and content.dtype == object and content.shape == ():
        content = content.item()
    if not isinstance(content, dict):
        raise FaceVerseFormatError(f"{path} does not hold a dict of arrays (FaceVerse .npy format)")
    return content


def _array(model: dict, key: str, path: Path) -> np.ndarray:
    """``model[key]`` as a real-valued numeric array; :class:`FaceVerseFormatError` naming the key otherwise."""
    if key not in model:
        raise FaceVerseFormatError(f"{path}: missing key {key!r}")
    try:
        array = np.asarray(model[key])
    except ValueError:  # ragged nesting
        array = np.asarray(None, dtype=object)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise FaceVerseFormatError(f"{path}: key {key!r} must hold numbers, got an array of {array.dtype}")
    return array


def _per_vertex(basis: np.ndarray, scale: float) -> torch.Tensor:
    """(3N, K) with x, y, z interleaved per vertex → (K, N, 3)."""
    return torch.from_numpy(basis.astype(np.float64).T.reshape(basis.shape[1], -1, 3) * scale)


def load_faceverse(path: str | Path, lip_ids: Sequence[int] | None = None, scale: float = 1.0) -> MorphableModel:
    """Build a :class:`MorphableModel` from a FaceVerse ``.npy`` dict (see module docstring)."""
    path = Path(path)
    model = _read_dict(path)
    mean, id_base, ex_base, tri, keypoints = (_array(model, key, path) for key in REQUIRED_KEYS)
    if mean.size % 3:
        raise FaceVerseFormatError(f"{path}: key 'meanshape' must hold 3·N numbers, got shape {mean.shape}")
    mean = mean.reshape(-1, 3)
    n = mean.shape[0]
    for key, basis in (("idBase", id_base), ("exBase", ex_base)):
        if basis.ndim != 2 or basis.shape[0] != 3 * n:
            raise FaceVerseFormatError(f"{path}: key {key!r} must be (3N={3 * n}, K), got shape {basis.shape}")
    if (
        tri.ndim != 2
        or tri.shape[1] != 3
        or tri.size == 0
        or not np.isfinite(tri).all()
        or tri.min() < 0
        or tri.max() >= n
    ):
        raise FaceVerseFormatError(f"{path}: key 'tri' must be (F, 3) vertex ids below {n}, got shape {tri.shape}")
    keypoints = keypoints.reshape(-1).astype(np.int64)
    if keypoints.size == 0 or keypoints.min() < 0 or keypoints.max() >= n:
        raise FaceVerseFormatError(f"{path}: key 'keypoints' must hold vertex ids below {n}")
    names = next((model[k] for k in NAME_KEYS if k in model), None)
    if names is not None and (isinstance(names, str) or not isinstance(names, (list, tuple, np.ndarray))):
        raise FaceVerseFormatError(
            f"{path}: key 'exp_name_list' must hold blendshape names, got {type(names).__name__}"
        )
    names = None if names is None else [str(name) for name in np.asarray(names).reshape(-1).tolist()]
    if names is None:
        if ex_base.shape[1] != len(ARKIT_BLENDSHAPES):
            raise FaceVerseFormatError(f"{path}: key 'exBase' has {ex_base.shape[1]} columns and no 'exp_name_list'")
        names = list(ARKIT_BLENDSHAPES)
    if len(names) != ex_base.shape[1]:
        raise FaceVerseFormatError(f"{path}: key 'exp_name_list' names {len(names)} of {ex_base.shape[1]} blendshapes")
    if lip_ids is None:
        if keypoints.size != 68:
            raise FaceVerseFormatError(f"{path}: key 'keypoints' is not the 68-point set; pass lip_ids explicitly")
        lip_ids = keypoints[48:68]
    return MorphableModel(
        mean_shape=torch.from_numpy(mean * scale),
        identity_basis=_per_vertex(id_base, scale),
        expression_basis=_per_vertex(ex_base, scale),
        triangles=torch.from_numpy(tri.astype(np.int64)),
        expression_names=names,
        lip_ids=torch.as_tensor(np.asarray(lip_ids, dtype=np.int64)),
        landmark_ids=torch.from_numpy(keypoints),
    )
