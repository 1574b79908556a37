"""The identity basis U_id of Eq. 1 for the MediaPipe topology: PCA of a hand-specified face population.

A face population is described by generator fields, each the displacement (cm) of one standard
deviation of an independent, zero-mean trait:

* 27 semantic traits (:data:`_SEMANTIC`): face width/height/depth, jaw width and angle, chin length,
  width and protrusion, nose length/width/protrusion and bridge, eye spacing/size/height/depth, mouth
  width/height/protrusion, lip thickness, forehead height and slope, cheek fullness, cheekbone width,
  brow height and ridge, face taper;
* 42 smooth generic fields: the monomials uᵃvᵇ (1 ≤ a + b ≤ 4, u = x / 7.7, v = y / 9.4, the mesh's
  half extents) along x, y and z, 0.08 cm at the face border, for the variation the traits miss
  (including mild asymmetry).

No random numbers are drawn. Rigid motion and uniform scale (7 dimensions) are projected out of every
field, since they belong to the pose P and camera, not to α. The population covariance F Fᵀ of the
generator matrix F (3N × 69, rank 64 after the projection) is diagonalised by SVD, F = U S Vᵀ: the
basis is the first k columns of U (orthonormal as 3N-vectors, U_idᵀ U_id = I) and the prior standard
deviation of α_k is S_k (3.6 … 0.13 for k = 40), decreasing as in a PCA model.

Plausible range: α ~ N(0, diag S²), a mean vertex displacement of 0.34 cm RMS (largest per face about
0.9 cm). Each component alone, up to ±3 S_k, flips no triangle with normal z > 0.3. Of 2000 joint
samples 99.7 % keep every triangle that faces within 60° of the camera (normal z > 0.5) unflipped; the
rest flip a sliver triangle between the inner brow and the inner eye corner, or one beside a nostril.
"""

from collections.abc import Callable

import numpy as np

from talkinghead.face.mesh_fields import MeshFields, smoothstep
from talkinghead.face.regions import (
    CHEEK_LEFT,
    NOSE_ALA_LEFT,
    eye_opening_triangles,
    mirror_permutation,
    mouth_opening_triangles,
)

# MediaPipe landmark ids of control sets (left side or midline; mirrored where a trait is bilateral); the cheek
# and nostril wing sets (CHEEK_LEFT, NOSE_ALA_LEFT) come from talkinghead.face.regions.
_CHIN = (152, 148, 176)
_NOSE_TIP = (1, 4, 19)
_NOSE_BASE = (1, 4, 19, 94, 2)  # tip, columella, subnasale
_NOSE_BRIDGE = (6, 168, 197, 195)
_CHEEKBONE_LEFT = (346, 352)
_JAW_ANGLE_LEFT = (397, 288, 365)


class _Population:
    """Vertices, fields and control sets the generator fields are written against."""

    def __init__(self, vertices: np.ndarray, triangles: np.ndarray, regions: dict[str, np.ndarray]) -> None:
        cut = mouth_opening_triangles(triangles) | eye_opening_triangles(triangles)
        self.fields = MeshFields(vertices, triangles[~cut])
        self.v = self.fields.vertices
        self.x, self.y, self.z = self.v.T
        self.normals = self.fields.normals()
        mirror = mirror_permutation(self.v)
        self.sign_x = np.sign(self.x)[:, None]
        left_eye, right_eye = self.v[regions["eye_left"]].mean(0), self.v[regions["eye_right"]].mean(0)
        self.eye_centre = np.where(self.x[:, None] > 0, left_eye, right_eye)
        corner = np.abs(self.x[regions["lip_outer"]]).max()
        self.lip_middle = smoothstep((corner - np.abs(self.x)) / 1.0)[:, None]  # 0 at the mouth corners
        self.controls = {
            "chin": np.union1d(_CHIN, mirror[list(_CHIN)]),
            "nose_tip": np.array(_NOSE_TIP),
            "nose_base": np.array(_NOSE_BASE),
            "nose_bridge": np.array(_NOSE_BRIDGE),
            "nose_alae": np.union1d(NOSE_ALA_LEFT, mirror[list(NOSE_ALA_LEFT)]),
            "cheeks": np.union1d(CHEEK_LEFT, mirror[list(CHEEK_LEFT)]),
            "cheekbones": np.union1d(_CHEEKBONE_LEFT, mirror[list(_CHEEKBONE_LEFT)]),
            "jaw_angles": np.union1d(_JAW_ANGLE_LEFT, mirror[list(_JAW_ANGLE_LEFT)]),
            "eyes": np.concatenate([regions["eye_left"], regions["eye_right"]]),
            "brows": np.concatenate([regions["brow_left"], regions["brow_right"]]),
            "lips": np.concatenate([regions["lip_outer"], regions["lip_inner"]]),
            "lip_outer_upper": regions["lip_outer_upper"][1:-1],
            "lip_outer_lower": regions["lip_outer_lower"][1:-1],
        }

    def near(self, control: str, radius: float) -> np.ndarray:
        return self.fields.falloff(self.controls[control], radius)[:, None]

    def axis(self, values: np.ndarray, axis: int) -> np.ndarray:
        field = np.zeros_like(self.v)
        field[:, axis] = values.ravel()
        return field


_Field = Callable[[_Population], np.ndarray]

_SEMANTIC: dict[str, _Field] = {
    "face_width": lambda p: p.axis(0.04 * p.x, 0),
    "face_height": lambda p: p.axis(0.04 * (p.y - p.y.mean()), 1),
    "face_depth": lambda p: p.axis(0.05 * (p.z - p.z.mean()), 2),
    "face_taper": lambda p: p.axis(0.04 * p.x * p.y / 8.0, 0),
    "jaw_width": lambda p: p.axis(0.07 * p.x * smoothstep((-p.y - 3.0) / 4.0), 0),
    "jaw_angle": lambda p: p.near("jaw_angles", 3.5) * (0.2 * p.sign_x + np.array([0.0, -0.1, 0.0])),
    "chin_length": lambda p: p.near("chin", 4.0) * np.array([0.0, -0.4, 0.0]),
    "chin_width": lambda p: p.near("chin", 3.0) * p.axis(0.1 * p.x, 0),
    "chin_protrusion": lambda p: p.near("chin", 4.0) * np.array([0.0, 0.0, 0.4]),
    "nose_length": lambda p: p.near("nose_base", 2.5) * np.array([0.0, -0.25, 0.0]),
    "nose_width": lambda p: p.near("nose_alae", 1.5) * p.axis(0.1 * p.x, 0),
    "nose_protrusion": lambda p: p.near("nose_tip", 3.0) * np.array([0.0, 0.0, 0.35]),
    "nose_bridge": lambda p: p.near("nose_bridge", 1.5) * np.array([0.0, 0.0, 0.25]),
    "eye_spacing": lambda p: p.near("eyes", 2.5) * p.sign_x * np.array([0.15, 0.0, 0.0]),
    "eye_size": lambda p: p.near("eyes", 2.0) * 0.07 * (p.v - p.eye_centre) * np.array([1.0, 1.0, 0.0]),
    "eye_height": lambda p: p.near("eyes", 2.5) * np.array([0.0, 0.2, 0.0]),
    "eye_depth": lambda p: p.near("eyes", 2.5) * np.array([0.0, 0.0, -0.15]),
    "mouth_width": lambda p: p.near("lips", 1.5) * p.axis(0.08 * p.x, 0),
    "mouth_height": lambda p: p.near("lips", 2.5) * np.array([0.0, 0.3, 0.0]),
    "mouth_protrusion": lambda p: p.near("lips", 1.5) * np.array([0.0, 0.0, 0.3]),
    "lip_thickness": lambda p: p.lip_middle
    * (
        p.near("lip_outer_upper", 1.0) * np.array([0.0, 0.08, 0.04])
        + p.near("lip_outer_lower", 1.0) * np.array([0.0, -0.08, 0.04])
    ),
    "forehead_height": lambda p: p.axis(0.4 * smoothstep((p.y - 4.0) / 4.3), 1),
    "forehead_slope": lambda p: p.axis(-0.4 * smoothstep((p.y - 4.0) / 4.3), 2),
    "cheek_fullness": lambda p: p.near("cheeks", 3.0) * 0.35 * p.normals,
    "cheekbone_width": lambda p: p.near("cheekbones", 3.0) * p.sign_x * np.array([0.3, 0.0, 0.0]),
    "brow_height": lambda p: p.near("brows", 2.5) * np.array([0.0, 0.2, 0.0]),
    "brow_ridge": lambda p: p.near("brows", 2.5) * np.array([0.0, 0.0, 0.2]),
}
"""Semantic traits: name → displacement field of one standard deviation (cm)."""

GENERIC_AMPLITUDE = 0.08
"""Displacement (cm) of each generic monomial field where |u| or |v| reaches 1."""


def _generic(p: _Population) -> list[np.ndarray]:
    u, v = p.x / np.abs(p.x).max(), p.y / np.abs(p.y).max()
    powers = [(a, d - a) for d in range(1, 5) for a in range(d + 1)]
    return [p.axis(GENERIC_AMPLITUDE * u**a * v**b, axis) for a, b in powers for axis in range(3)]


def _similarity_basis(vertices: np.ndarray) -> np.ndarray:
    """Orthonormal (3N, 7) basis of infinitesimal translations, rotations and uniform scaling."""
    centred = vertices - vertices.mean(axis=0)
    moves = [np.tile(np.eye(3)[k], (len(vertices), 1)) for k in range(3)]
    moves += [np.cross(np.eye(3)[k], centred) for k in range(3)]
    moves.append(centred)
    q, _ = np.linalg.qr(np.stack([m.ravel() for m in moves], axis=1))
    return q


def _generator_fields(vertices: np.ndarray, triangles: np.ndarray, regions: dict[str, np.ndarray]) -> np.ndarray:
    """The population's generator matrix F, (M, N, 3): semantic traits then generic fields (cm, 1 std)."""
    population = _Population(vertices, triangles, regions)
    fields = [field(population) for field in _SEMANTIC.values()] + _generic(population)
    return np.stack(fields)


def identity_basis(
    vertices: np.ndarray, triangles: np.ndarray, regions: dict[str, np.ndarray], k: int = 40
) -> tuple[np.ndarray, np.ndarray]:
    """U_id of Eq. 1 and the prior standard deviation of α.

    Args:
        vertices: the mean shape S̄, (N, 3) cm.
        triangles: (F, 3) triangles of the full canonical mesh (openings are cut internally).
        regions: :func:`talkinghead.face.regions.face_regions`.
        k: number of components K_id (at most the rank of the population, 64).

    Returns:
        ``basis`` (k, N, 3), orthonormal as 3N-vectors, and ``std`` (k,), decreasing; α_k = ±std_k is
        one standard deviation of the population along component k. Signs are fixed so each
        component's largest entry is positive.
    """
    generators = _generator_fields(vertices, triangles, regions)
    matrix = generators.reshape(len(generators), -1).T
    similarity = _similarity_basis(np.asarray(vertices, dtype=np.float64))
    matrix = matrix - similarity @ (similarity.T @ matrix)
    u, s, _ = np.linalg.svd(matrix, full_matrices=False)
    rank = int((s > 1e-6 * s[0]).sum())
    if not 1 <= k <= rank:
        raise ValueError(f"k must be between 1 and {rank}, got {k}")
    u = u[:, :k] * np.sign(u[np.abs(u[:, :k]).argmax(axis=0), np.arange(k)])
    return u.T.reshape(k, *np.shape(vertices)), s[:k]
