"""Named vertex-id sets of the MediaPipe face-mesh topology (the built-in model's regions).

The sets come from MediaPipe's own edge lists (``mediapipe.python.solutions.face_mesh_connections``),
imported lazily because importing mediapipe costs about 0.4-0.6 s; the result is cached. MediaPipe's
``LEFT`` is the subject's left, which is ``+x`` in the canonical frame (the ``FACEMESH_LEFT_EYE`` vertices
have x = +1.9 … +4.5 cm), so every ``*_left`` region here lies on the ``+x`` side.

Contours are ordered loops; the ``*_upper`` / ``*_lower`` chains run from the ``-x`` corner to the ``+x``
corner, both corners included. Region names:

* ``lip_outer``, ``lip_inner``: the outer (vermilion border) and inner (mouth opening) lip contours;
  their union is :func:`lip_ids`, the L = 40 vertices that carry O_lip in Eq. 4.
* ``lip_outer_upper``, ``lip_outer_lower``, ``lip_inner_upper``, ``lip_inner_lower``: their halves.
* ``eye_left``, ``eye_right``: lid-margin loops; ``eye_left_upper`` / ``eye_left_lower`` (and right): lids.
* ``brow_left``, ``brow_right``, ``face_oval``, ``nose``: as MediaPipe draws them.

Small hand-picked control sets on the subject's left (the bases mirror them for the right side):
:data:`CHEEK_LEFT`, :data:`NOSE_ALA_LEFT`.
"""

from collections import defaultdict
from functools import lru_cache

import numpy as np

CHEEK_LEFT = (427,)  # cheek beside the mouth (4.4, -2.7)
NOSE_ALA_LEFT = (278, 294, 331, 358)  # left nostril wing


def _loops(edges: frozenset[tuple[int, int]]) -> list[list[int]]:
    """Order the vertices of the closed contours given as one unordered edge set."""
    neighbours: dict[int, list[int]] = defaultdict(list)
    for a, b in edges:
        neighbours[a].append(b)
        neighbours[b].append(a)
    loops, seen = [], set()
    for start in sorted(neighbours):
        if start in seen:
            continue
        loop = [start]
        while (nxt := next(n for n in neighbours[loop[-1]] if len(loop) < 2 or n != loop[-2])) != start:
            loop.append(nxt)
        seen.update(loop)
        loops.append(loop)
    return loops


def _split(loop: list[int], vertices: np.ndarray) -> tuple[list[int], list[int]]:
    """Cut a contour at its two x-extreme vertices into (upper, lower) chains running -x → +x."""
    first, last = int(np.argmin(vertices[loop, 0])), int(np.argmax(vertices[loop, 0]))
    rolled = loop[first:] + loop[:first]
    cut = (last - first) % len(loop)
    one, other = rolled[: cut + 1], [rolled[0]] + rolled[cut:][::-1]
    if vertices[one, 1].mean() < vertices[other, 1].mean():
        one, other = other, one
    return one, other


def _ids(edges: frozenset[tuple[int, int]], num_vertices: int) -> np.ndarray:
    """Sorted vertex ids of an edge set, without the iris landmarks (468…477) the mesh does not have."""
    return np.array(sorted({i for edge in edges for i in edge if i < num_vertices}), dtype=np.int64)


@lru_cache(maxsize=1)
def _face_regions() -> dict[str, np.ndarray]:
    from mediapipe.python.solutions import face_mesh_connections as fm

    from talkinghead.face.canonical_mesh import load_canonical_mesh

    vertices = load_canonical_mesh().vertices
    n = vertices.shape[0]
    inner, outer = sorted(_loops(fm.FACEMESH_LIPS), key=lambda loop: np.ptp(vertices[loop, 1]))
    regions = {"lip_inner": inner, "lip_outer": outer}
    for side, edges in (("left", fm.FACEMESH_LEFT_EYE), ("right", fm.FACEMESH_RIGHT_EYE)):
        (regions[f"eye_{side}"],) = _loops(edges)
    for name in ("lip_inner", "lip_outer", "eye_left", "eye_right"):
        regions[f"{name}_upper"], regions[f"{name}_lower"] = _split(regions[name], vertices)
    arrays = {name: np.asarray(ids, dtype=np.int64) for name, ids in regions.items()}
    arrays["brow_left"] = _ids(fm.FACEMESH_LEFT_EYEBROW, n)
    arrays["brow_right"] = _ids(fm.FACEMESH_RIGHT_EYEBROW, n)
    arrays["face_oval"] = np.asarray(_loops(fm.FACEMESH_FACE_OVAL)[0], dtype=np.int64)
    arrays["nose"] = _ids(fm.FACEMESH_NOSE, n)
    for array in arrays.values():
        array.setflags(write=False)
    return arrays


def face_regions() -> dict[str, np.ndarray]:
    """All named regions (read-only int64 arrays, cached); see the module docstring for the names."""
    return dict(_face_regions())


def lip_ids() -> np.ndarray:
    """The L = 40 lip vertices of Eq. 4 (outer then inner contour), the vertices that carry O_lip."""
    regions = _face_regions()
    return np.concatenate([regions["lip_outer"], regions["lip_inner"]])


def _opening_mask(triangles: np.ndarray, loop: np.ndarray) -> np.ndarray:
    return np.isin(triangles, loop).all(axis=1)


def mouth_opening_triangles(triangles: np.ndarray) -> np.ndarray:
    """Boolean mask of the triangles that fill the mouth opening.

    MediaPipe triangulates the inner lip contour (a 20-gon) with 18 triangles whose three corners all
    lie on that contour; the lip surface itself always uses a vertex of the next ring outwards. Removing
    these 18 makes the inner contour a boundary loop, so the mouth opens as a hole when the jaw drops.
    """
    return _opening_mask(triangles, _face_regions()["lip_inner"])


def eye_opening_triangles(triangles: np.ndarray) -> np.ndarray:
    """Boolean mask of the triangles (14 per eye) spanning the eye openings between the lid margins."""
    regions = _face_regions()
    return _opening_mask(triangles, np.concatenate([regions["eye_left"], regions["eye_right"]]))


def mirror_permutation(vertices: np.ndarray) -> np.ndarray:
    """Vertex permutation ``p`` of the x → -x mirror: vertex ``p[i]`` sits where vertex ``i`` mirrors to.

    Found by nearest neighbour; the canonical mesh is exactly symmetric (largest error 0.0 cm,
    28 vertices on the midline map to themselves).
    """
    mirrored = vertices * np.array([-1.0, 1.0, 1.0])
    distance = np.linalg.norm(vertices[:, None, :] - mirrored[None, :, :], axis=-1)
    return distance.argmin(axis=0)
