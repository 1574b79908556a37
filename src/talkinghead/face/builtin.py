"""The project's own morphable model (Eq. 1 / Eq. 4) on the MediaPipe face-mesh topology.

* S̄: the canonical face mesh (468 vertices, cm);
* U_id: :func:`talkinghead.face.identity_basis.identity_basis` (orthonormal, PCA-ordered; the prior
  standard deviations are :func:`builtin_identity_std`);
* U_exp: the 52 ARKit blendshapes of :func:`talkinghead.face.expression_basis.expression_basis`;
* triangles: the canonical 898 minus the 18 that fill the mouth opening (880), so the mouth is a hole
  that opens with ``jawOpen``; the eye openings stay filled (the lids close onto them);
* lip ids: the 40 outer and inner lip-contour vertices that carry O_lip;
* regions: :func:`talkinghead.face.regions.face_regions`; landmark ids: all 468 vertices, which are the
  MediaPipe FaceMesh landmarks 0…467.
"""

from functools import lru_cache

import numpy as np
import torch

from talkinghead.face.canonical_mesh import load_canonical_mesh
from talkinghead.face.expression_basis import ARKIT_BLENDSHAPES, expression_basis
from talkinghead.face.identity_basis import identity_basis
from talkinghead.face.morphable_model import MorphableModel
from talkinghead.face.regions import face_regions, lip_ids, mouth_opening_triangles


@lru_cache(maxsize=1)
def _expression() -> np.ndarray:
    mesh = load_canonical_mesh()
    return expression_basis(mesh.vertices, mesh.triangles, face_regions())


@lru_cache(maxsize=4)
def _identity(num_identity: int) -> tuple[np.ndarray, np.ndarray]:
    mesh = load_canonical_mesh()
    return identity_basis(mesh.vertices, mesh.triangles, face_regions(), num_identity)


def builtin_morphable_model(num_identity: int = 40) -> MorphableModel:
    """A fresh :class:`MorphableModel` with K_id = ``num_identity`` (1…64) and the 52 ARKit blendshapes.

    The arrays are built once per ``num_identity`` (about 0.1 s after mediapipe is imported) and cached;
    every call returns a new module with its own buffers.
    """
    mesh = load_canonical_mesh()
    identity, _ = _identity(num_identity)
    triangles = mesh.triangles[~mouth_opening_triangles(mesh.triangles)]
    return MorphableModel(
        mean_shape=torch.tensor(mesh.vertices, dtype=torch.float32),
        identity_basis=torch.tensor(identity, dtype=torch.float32),
        expression_basis=torch.tensor(_expression(), dtype=torch.float32),
        triangles=torch.tensor(triangles),
        expression_names=ARKIT_BLENDSHAPES,
        lip_ids=torch.tensor(lip_ids()),
        regions={name: torch.tensor(ids) for name, ids in face_regions().items()},
        landmark_ids=torch.arange(mesh.vertices.shape[0]),
    )


def builtin_identity_std(num_identity: int = 40) -> torch.Tensor:
    """Prior standard deviation of each α_k of the built-in model, (num_identity,): α ~ N(0, diag std²)."""
    return torch.tensor(_identity(num_identity)[1], dtype=torch.float32)
