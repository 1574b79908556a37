"""Pinhole camera that projects posed meshes into the square face crop (by default
:data:`~talkinghead.conventions.CROP_SIZE`², 256²).

Convention (used by the rasterizer, the landmarks and the fitting alike):

* world = the canonical model frame: centimetres, ``+x`` image right, ``+y`` up, ``+z`` towards the
  camera; a posed head sits near the origin (Eq. 4, 8);
* the camera centre is at ``(0, 0, distance)`` looking down ``-z``;
* pixel coordinates ``(u, v)`` have their origin at the top-left *corner* of the image, ``u`` to the
  right, ``v`` down; the centre of pixel (row i, column j) is ``(j + 0.5, i + 0.5)``;
* ``u = W/2 + f·x/(d − z)``, ``v = H/2 − f·y/(d − z)``, depth ``= d − z`` (cm, positive in front).

The defaults (f = 500 px, d = 60 cm) put the 17.7-cm-tall canonical face about 150 px tall in a
256² crop, close to the FOMM crops of the paper's §4.1 data. :func:`scaled_camera` gives the same view at another
square resolution.
"""

from dataclasses import dataclass

import torch

from talkinghead.conventions import CROP_SIZE


@dataclass(frozen=True)
class PerspectiveCamera:
    image_size: int = CROP_SIZE
    focal: float = 500.0
    distance: float = 60.0

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """World points (..., 3) → screen points (..., 3) as (u, v, depth), see module docstring."""
        depth = self.distance - points[..., 2]
        half = self.image_size / 2.0
        u = half + self.focal * points[..., 0] / depth
        v = half - self.focal * points[..., 1] / depth
        return torch.stack((u, v, depth), dim=-1)

    def unproject(self, screen: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`project`: (u, v, depth) (..., 3) → world points (..., 3)."""
        half = self.image_size / 2.0
        depth = screen[..., 2]
        x = (screen[..., 0] - half) * depth / self.focal
        y = -(screen[..., 1] - half) * depth / self.focal
        return torch.stack((x, y, self.distance - depth), dim=-1)


def scaled_camera(image_size: int, camera: PerspectiveCamera | None = None) -> PerspectiveCamera:
    """``camera`` (default: the default crop camera) at another square resolution, ``image_size``²: the same view,
    the focal length scaled with the image."""
    camera = camera or PerspectiveCamera()
    return PerspectiveCamera(image_size, camera.focal * image_size / camera.image_size, camera.distance)
