"""Smooth scalar and vector fields on a triangle mesh, the tools the built-in bases are authored with.

Distances are geodesic along the mesh edges (Dijkstra), so with the mouth and eye openings cut out a
field placed on the lower lip does not leak across the gap into the upper lip. ``harmonic`` solves the
discrete Laplace equation with the edge weights 1/length (linear along a chain, independent of how
densely MediaPipe sampled a region) for the free vertices, given values on fixed ones: the standard
handle-based mesh deformation.
"""

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.sparse.linalg import spsolve


def smoothstep(t: np.ndarray) -> np.ndarray:
    """3t² - 2t³ on [0, 1], clamped: C¹, 0 at t ≤ 0, 1 at t ≥ 1."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


class MeshFields:
    """Geodesic falloffs, harmonic interpolation and normals on one mesh (vertices in cm)."""

    def __init__(self, vertices: np.ndarray, triangles: np.ndarray) -> None:
        self.vertices = np.asarray(vertices, dtype=np.float64)
        self.triangles = np.asarray(triangles, dtype=np.int64)
        n = self.vertices.shape[0]
        edges = np.concatenate([self.triangles[:, [0, 1]], self.triangles[:, [1, 2]], self.triangles[:, [2, 0]]])
        edges = np.unique(np.sort(edges, axis=1), axis=0)
        length = np.linalg.norm(self.vertices[edges[:, 0]] - self.vertices[edges[:, 1]], axis=1)
        self.graph = csr_matrix(coo_matrix((length, (edges[:, 0], edges[:, 1])), shape=(n, n)))
        weight = coo_matrix((1.0 / length, (edges[:, 0], edges[:, 1])), shape=(n, n)).tocsr()
        weight = weight + weight.T
        degree = np.asarray(weight.sum(axis=1)).ravel()
        self.laplacian = (csr_matrix((degree, (np.arange(n), np.arange(n))), shape=(n, n)) - weight).tocsr()

    @property
    def num_vertices(self) -> int:
        return self.vertices.shape[0]

    def geodesic(self, sources: np.ndarray) -> np.ndarray:
        """Shortest edge-path distance (cm) from every vertex to the nearest of ``sources``."""
        return dijkstra(self.graph, directed=False, indices=np.asarray(sources), min_only=True)

    def falloff(self, sources: np.ndarray, radius: float) -> np.ndarray:
        """Weight 1 on ``sources`` decaying smoothly (smoothstep of geodesic distance) to 0 at ``radius``."""
        return 1.0 - smoothstep(self.geodesic(sources) / radius)

    def harmonic(self, fixed: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Harmonic interpolation: ``values`` (len(fixed), C) on ``fixed``, Δf = 0 elsewhere; (N, C)."""
        fixed = np.asarray(fixed)
        values = np.asarray(values, dtype=np.float64).reshape(len(fixed), -1)
        free = np.setdiff1d(np.arange(self.num_vertices), fixed)
        field = np.zeros((self.num_vertices, values.shape[1]))
        field[fixed] = values
        rhs = -self.laplacian[free][:, fixed] @ values
        field[free] = np.asarray(spsolve(self.laplacian[free][:, free].tocsc(), rhs)).reshape(len(free), -1)
        return field

    def normals(self) -> np.ndarray:
        """Unit vertex normals (area-weighted face normals; faces wind counter-clockwise seen from +z)."""
        corners = self.vertices[self.triangles]
        face = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        normals = np.zeros_like(self.vertices)
        for k in range(3):
            np.add.at(normals, self.triangles[:, k], face)
        return normals / np.linalg.norm(normals, axis=1, keepdims=True).clip(min=1e-12)
