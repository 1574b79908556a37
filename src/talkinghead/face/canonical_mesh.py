"""The MediaPipe canonical face mesh shipped with the package (Apache-2.0, see ``data/LICENSE``).

Coordinates are the canonical model's: centimetres, ``+x`` towards the subject's left (image right
when the face looks at the camera), ``+y`` up, ``+z`` out of the face towards the camera. Triangles
wind counter-clockwise seen from ``+z``. Vertex ``i`` is MediaPipe FaceMesh landmark ``i``, so fitting
to FaceMesh landmarks needs no correspondence table.
"""

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

NUM_VERTICES = 468
NUM_TRIANGLES = 898


@dataclass(frozen=True)
class CanonicalMesh:
    vertices: np.ndarray  # (468, 3) float64, centimetres
    triangles: np.ndarray  # (898, 3) int64, zero-based
    uv: np.ndarray  # (468, 2) float64, texture coordinates per vertex


def _parse_obj(text: str) -> CanonicalMesh:
    vertices, uvs, triangles = [], [], []
    uv_of_vertex: dict[int, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            vertices.append([float(x) for x in parts[1:4]])
        elif parts[0] == "vt":
            uvs.append([float(x) for x in parts[1:3]])
        elif parts[0] == "f":
            corners = [p.split("/") for p in parts[1:4]]
            triangles.append([int(c[0]) - 1 for c in corners])
            for c in corners:
                if len(c) > 1 and c[1]:
                    uv_of_vertex[int(c[0]) - 1] = int(c[1]) - 1
    uv = np.zeros((len(vertices), 2))
    for v, t in uv_of_vertex.items():
        uv[v] = uvs[t]
    return CanonicalMesh(np.asarray(vertices, np.float64), np.asarray(triangles, np.int64), uv)


@lru_cache(maxsize=1)
def load_canonical_mesh() -> CanonicalMesh:
    """Return the 468-vertex, 898-triangle canonical face mesh (cached, read-only arrays)."""
    text = resources.files("talkinghead.face").joinpath("data/canonical_face_model.obj").read_text()
    mesh = _parse_obj(text)
    if mesh.vertices.shape != (NUM_VERTICES, 3) or mesh.triangles.shape != (NUM_TRIANGLES, 3):
        raise RuntimeError("the packaged canonical_face_model.obj is damaged")
    for array in (mesh.vertices, mesh.triangles, mesh.uv):
        array.setflags(write=False)
    return mesh
