"""The 52 ARKit blendshapes of the built-in model, authored as region deformations (U_exp of Eq. 1).

Each blendshape is the vertex displacement (cm) at weight β = 1; the expression part of Eq. 1 is
``Σ_k β_k U_exp[k]``. Most are a translation (plus optionally a narrowing towards the midline or a push
along the surface normal) of a control vertex set, faded out with a smoothstep of the geodesic distance
to that set (:data:`_TERMS`). Geodesic distances run on the mesh with the mouth and eye openings cut
out, so the upper and lower lips (and lids) only meet at the corners. Three families need more:

* ``jawOpen``: rotation by 13° about the jaw axis (the x axis through :data:`JAW_PIVOT`, behind the
  ears) weighted by the *jaw weight*, a harmonic field that is 1 on the lower lip, the chin and
  the jaw line and 0 on the upper lip, the nose and everything above y = -1.5 cm, so the
  cheeks blend smoothly. It opens the inner lip gap (vertex 13 to 14) from 0.55 cm to 2.63 cm.
  ``jawForward`` / ``jawLeft`` translate by the same weight; ``mouthClose`` undoes jawOpen's motion on
  the lips (so jawOpen = mouthClose = 1 is an open jaw with closed lips; alone it pushes the lower lip
  into the upper one, as in ARKit).
* eyelids: the lid-margin vertices get exact targets along the opposite lid (matched by arc length) and
  the lid skin follows by harmonic interpolation, fixed at the eye corners, the brow and beyond 1.5 cm.
  ``eyeBlink`` closes the lid onto a line 15 % of the gap above the lower lid (gap 0 at weight 1).

``Left`` is the subject's left (``+x``). Only the left (and symmetric) shapes are authored; every
``*Right`` is the exact mirror image of its ``*Left`` under x → -x with the vertex permutation of
:func:`talkinghead.face.regions.mirror_permutation`. ``eyeLook*`` (8) are zero: the mesh has no
eyeballs, gaze lives in the image. ``tongueOut`` is zero: the mesh has no tongue.
"""

from typing import NamedTuple

import numpy as np

from talkinghead.face.mesh_fields import MeshFields, smoothstep
from talkinghead.face.regions import (
    CHEEK_LEFT,
    NOSE_ALA_LEFT,
    eye_opening_triangles,
    mirror_permutation,
    mouth_opening_triangles,
)

ARKIT_BLENDSHAPES = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft",
    "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight",
    "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight",
    "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight",
    "mouthFrownLeft", "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft",
    "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight", "tongueOut",
)  # fmt: skip
"""The 52 ARKit blendshape names in Apple's order (the order of U_exp's columns)."""

LIP_BLENDSHAPES = tuple(n for n in ARKIT_BLENDSHAPES if n.startswith(("jaw", "mouth")) or n == "cheekPuff")
"""β_lip of the facial-motion generator: the 28 speech-driven shapes, ``jaw*``, ``mouth*`` and
``cheekPuff`` (cheeks inflate on plosives). ``tongueOut`` and ``cheekSquint*`` (a smile's eye-side
component) go with the rest."""

OTHER_BLENDSHAPES = tuple(n for n in ARKIT_BLENDSHAPES if n not in LIP_BLENDSHAPES)
"""β_other: brows, eyes, cheek squint, nose sneer, tongue (24 shapes)."""

ZERO_BLENDSHAPES = tuple(n for n in ARKIT_BLENDSHAPES if n.startswith("eyeLook")) + ("tongueOut",)
"""Shapes the built-in mesh cannot express (no eyeballs, no tongue); their basis vectors are zero."""

JAW_PIVOT = np.array([0.0, -0.5, -3.5])
"""A point on the jaw's rotation axis (parallel to x), cm: below and behind the ear (y 0.7, z -2.4)."""

JAW_OPEN_DEGREES = 13.0

# MediaPipe landmark ids of small control sets (left side; the right side is their mirror image); the cheek
# and nostril wing sets are shared with the identity basis (talkinghead.face.regions).
_CHEEK_UPPER_LEFT = (330, 347, 348)  # malar fat pad under the left eye


class _Term(NamedTuple):
    """``weight(control, radius) * (offset + narrow * (-x, 0, 0) + normal * n)`` [* left-side weight]."""

    control: str
    radius: float
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    narrow: float = 0.0
    normal: float = 0.0
    left_side: bool = False


_TERMS: dict[str, tuple[_Term, ...]] = {
    "browDownLeft": (_Term("brow_left_inner", 2.5, (-0.15, -0.45, -0.05)),),
    "browInnerUp": (_Term("brow_inner", 2.5, (0.0, 0.55, 0.05)),),
    "browOuterUpLeft": (_Term("brow_left_outer", 2.5, (0.0, 0.5, 0.0)),),
    "cheekPuff": (_Term("cheeks", 2.5, normal=0.6),),
    "cheekSquintLeft": (_Term("cheek_upper_left", 2.0, (0.05, 0.3, 0.1)),),
    "noseSneerLeft": (_Term("nose_ala_left", 1.5, (0.05, 0.3, 0.05)),),
    "mouthSmileLeft": (_Term("mouth_corner_left", 2.5, (0.45, 0.55, -0.25)),),
    "mouthFrownLeft": (_Term("mouth_corner_left", 2.0, (0.05, -0.45, 0.0)),),
    "mouthStretchLeft": (_Term("mouth_corner_left", 2.5, (0.5, -0.15, -0.15)),),
    "mouthDimpleLeft": (_Term("mouth_corner_left", 1.5, (0.2, 0.0, -0.3)),),
    "mouthLeft": (_Term("lips", 2.0, (0.6, 0.0, 0.0)),),
    "mouthFunnel": (
        _Term("lips", 1.2, (0.0, 0.0, 0.4), narrow=0.2),
        _Term("lip_upper_mid", 0.9, (0.0, 0.15, 0.05)),
        _Term("lip_lower_mid", 0.9, (0.0, -0.15, 0.05)),
    ),
    "mouthPucker": (_Term("lips", 1.5, (0.0, 0.0, 0.6), narrow=0.3),),
    "mouthRollLower": (_Term("lip_outer_lower", 1.2, (0.0, 0.25, -0.35)),),
    "mouthRollUpper": (_Term("lip_outer_upper", 1.2, (0.0, -0.25, -0.35)),),
    "mouthShrugLower": (_Term("lip_lower", 2.5, (0.0, 0.3, 0.1)),),
    "mouthShrugUpper": (_Term("lip_upper", 2.0, (0.0, 0.25, 0.05)),),
    "mouthPressLeft": (
        _Term("lip_outer_upper", 0.8, (0.0, -0.15, 0.0), left_side=True),
        _Term("lip_outer_lower", 0.8, (0.0, 0.2, 0.0), left_side=True),
    ),
    "mouthUpperUpLeft": (_Term("lip_upper", 1.5, (0.0, 0.4, 0.05), left_side=True),),
    "mouthLowerDownLeft": (_Term("lip_lower", 1.5, (0.0, -0.4, 0.0), left_side=True),),
}
"""Falloff-translated shapes: name → terms, each (control set, falloff radius cm, motion cm)."""


class _Face:
    """The mesh, its fields and the named control sets the blendshapes are written against."""

    def __init__(self, vertices: np.ndarray, triangles: np.ndarray, regions: dict[str, np.ndarray]) -> None:
        cut = mouth_opening_triangles(triangles) | eye_opening_triangles(triangles)
        self.fields = MeshFields(vertices, triangles[~cut])
        self.vertices = self.fields.vertices
        self.regions = regions
        self.mirror = mirror_permutation(self.vertices)
        x = self.vertices[:, 0]
        brow_left = regions["brow_left"]
        brow_inner = np.concatenate([brow_left, regions["brow_right"]])
        brow_inner = brow_inner[np.abs(x[brow_inner]) < np.median(x[brow_left])]
        upper = np.concatenate([regions["lip_outer_upper"][1:-1], regions["lip_inner_upper"][1:-1]])
        lower = np.concatenate([regions["lip_outer_lower"][1:-1], regions["lip_inner_lower"][1:-1]])
        self.controls = {
            "brow_left_inner": brow_left[x[brow_left] < np.median(x[brow_left])],
            "brow_left_outer": brow_left[x[brow_left] >= np.median(x[brow_left])],
            "brow_inner": brow_inner,
            "cheeks": self._both(CHEEK_LEFT),
            "cheek_upper_left": np.array(_CHEEK_UPPER_LEFT),
            "nose_ala_left": np.array(NOSE_ALA_LEFT),
            "mouth_corner_left": np.array([regions["lip_outer_upper"][-1], regions["lip_inner_upper"][-1]]),
            "lips": np.concatenate([regions["lip_outer"], regions["lip_inner"]]),
            "lip_upper": upper,
            "lip_lower": lower,
            "lip_upper_mid": upper[np.abs(x[upper]) < 1.2],
            "lip_lower_mid": lower[np.abs(x[lower]) < 1.2],
            "lip_outer_upper": regions["lip_outer_upper"][1:-1],
            "lip_outer_lower": regions["lip_outer_lower"][1:-1],
        }
        self.left_side = smoothstep((x + 1.0) / 2.0)[:, None]
        self.normals = self.fields.normals()

    def _both(self, left_ids: tuple[int, ...]) -> np.ndarray:
        return np.concatenate([np.array(left_ids), self.mirror[list(left_ids)]])

    def term(self, t: _Term) -> np.ndarray:
        weight = self.fields.falloff(self.controls[t.control], t.radius)[:, None]
        motion = np.broadcast_to(np.asarray(t.offset), self.vertices.shape).copy()
        motion[:, 0] -= t.narrow * self.vertices[:, 0]
        motion += t.normal * self.normals
        return weight * motion * (self.left_side if t.left_side else 1.0)

    def mirrored(self, shape: np.ndarray) -> np.ndarray:
        """The x → -x mirror image of a displacement field."""
        return shape[self.mirror] * np.array([-1.0, 1.0, 1.0])

    def jaw_weight(self) -> np.ndarray:
        """Harmonic weight: 1 on the lower inner lip, chin and jaw line; 0 on the upper lip and upper face."""
        r, y = self.regions, self.vertices[:, 1]
        oval = r["face_oval"]
        lower_lip = np.concatenate([r["lip_inner_lower"][1:-1], r["lip_outer_lower"][1:-1]])
        upper_lip = np.concatenate([r["lip_inner_upper"][1:-1], r["lip_outer_upper"][1:-1], r["nose"]])
        one = np.concatenate([lower_lip, oval[y[oval] < -4.0]])
        zero = np.union1d(upper_lip, np.flatnonzero(y > -1.5))
        fixed = np.concatenate([one, zero])
        return self.fields.harmonic(fixed, np.r_[np.ones(len(one)), np.zeros(len(zero))])[:, 0]

    def jaw(self) -> dict[str, np.ndarray]:
        weight = self.jaw_weight()[:, None]
        angle = np.deg2rad(JAW_OPEN_DEGREES)
        c, s = np.cos(angle), np.sin(angle)
        rotation = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
        relative = self.vertices - JAW_PIVOT
        open_ = weight * (relative @ rotation.T - relative)
        lips = self.fields.falloff(self.regions["lip_inner_lower"][1:-1], 1.5)[:, None]
        return {
            "jawOpen": open_,
            "mouthClose": -lips * open_,
            "jawForward": weight * np.array([0.0, 0.0, 0.5]),
            "jawLeft": weight * np.array([0.6, 0.0, 0.0]),
        }

    def lids(self, upper_fraction: float, lower_fraction: float) -> np.ndarray:
        """Left lids: each margin moves this fraction of the way to the opposite lid; skin follows."""
        upper, lower = self.regions["eye_left_upper"], self.regions["eye_left_lower"]
        upper_path, lower_path = self._arc_path(upper), self._arc_path(lower)
        target_upper = upper_fraction * (lower_path(self._arc(upper)[1:-1]) - self.vertices[upper[1:-1]])
        target_lower = lower_fraction * (upper_path(self._arc(lower)[1:-1]) - self.vertices[lower[1:-1]])
        distance = self.fields.geodesic(self.regions["eye_left"])
        far = np.flatnonzero(distance > 1.5)
        anchors = np.union1d(np.union1d(far, self.regions["brow_left"]), [upper[0], upper[-1]])
        fixed = np.concatenate([upper[1:-1], lower[1:-1], anchors])
        values = np.concatenate([target_upper, target_lower, np.zeros((len(anchors), 3))])
        return self.fields.harmonic(fixed, values)

    def _arc(self, chain: np.ndarray) -> np.ndarray:
        steps = np.linalg.norm(np.diff(self.vertices[chain], axis=0), axis=1)
        arc = np.r_[0.0, np.cumsum(steps)]
        return arc / arc[-1]

    def _arc_path(self, chain: np.ndarray):
        arc, points = self._arc(chain), self.vertices[chain]
        return lambda t: np.stack([np.interp(t, arc, points[:, k]) for k in range(3)], axis=1)


def expression_basis(vertices: np.ndarray, triangles: np.ndarray, regions: dict[str, np.ndarray]) -> np.ndarray:
    """U_exp of Eq. 1 for the MediaPipe topology: (52, N, 3) displacements in cm at weight 1.

    Args:
        vertices: the mean shape S̄, (N, 3) cm, in the canonical frame (+x subject's left, +y up).
        triangles: (F, 3) triangles of the full canonical mesh (openings are cut internally).
        regions: :func:`talkinghead.face.regions.face_regions`.
    """
    face = _Face(vertices, triangles, regions)
    shapes = {name: sum(face.term(t) for t in terms) for name, terms in _TERMS.items()}
    shapes.update(face.jaw())
    shapes["eyeBlinkLeft"] = face.lids(0.85, 0.15)
    shapes["eyeSquintLeft"] = face.lids(0.2, 0.3)
    shapes["eyeWideLeft"] = face.lids(-0.35, 0.0)
    for name in [n for n in shapes if n.endswith("Left")]:
        shapes[name[: -len("Left")] + "Right"] = face.mirrored(shapes[name])
    zero = np.zeros_like(face.vertices)
    return np.stack([shapes.get(name, zero) for name in ARKIT_BLENDSHAPES])
