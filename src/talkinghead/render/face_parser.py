"""Outer-region parsing of the reference image for the projection texture's PT_out (VividTalk Eq. 10).

The paper parses images with a CelebA-trained face parser ([16]) to get the regions outside the 3DMM's
inner face (hair, neck, torso, background). This project must work offline without third-party weights,
so the default :class:`MediaPipeFaceParser` is built from MediaPipe, already a dependency:

* the person mask of MediaPipe's selfie segmentation separates the person from the background;
* the face hull — the convex hull of the reference mesh projected into the image, which for the built-in
  model *is* the MediaPipe FaceMesh (same 468 vertices), so no second FaceMesh pass is needed — belongs to
  the head, and so does every person pixel above the chin; person pixels further below the chin are the
  torso, with a soft ramp between the two.

The result is three soft labels per pixel, (background, head, torso), summing to 1. The head labels then
follow the rigid head motion while torso and background stay (:mod:`talkinghead.render.motion_inputs`).
Any :class:`FaceParser` subclass can replace the default, e.g. a learned CelebAMask-HQ parser whose
classes are merged into these three.
"""

import importlib
from abc import ABC, abstractmethod

import cv2
import numpy as np
import torch

from talkinghead.face.mesh_fields import smoothstep
from talkinghead.image_tensors import to_uint8

OUTER_CLASSES = ("background", "head", "torso")
CHIN_MARGIN = 0.05  # × face height below the chin where the head ends …
CHIN_RAMP = 0.15  # … and the ramp (× face height) over which it turns into torso


class FaceParser(ABC):
    """Interface: reference images + their projected face mesh → outer-region labels."""

    @abstractmethod
    def parse(self, images: torch.Tensor, face_points: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [0, 1] and projected mesh vertices (B, N, 2) as (u, v) image pixels
        (camera convention) → soft labels (B, 3, H, W) over :data:`OUTER_CLASSES`, summing to 1 per pixel,
        on the images' device and dtype."""


def outer_labels(person: np.ndarray, face_points: np.ndarray) -> np.ndarray:
    """Person mask (H, W) in [0, 1] and face points (N, 2) pixels → labels (3, H, W) (module docstring)."""
    height, width = person.shape
    hull = np.zeros((height, width), np.float32)
    corners = cv2.convexHull(np.round(face_points * 16.0).astype(np.int32))  # 4 fractional bits
    cv2.fillConvexPoly(hull, corners, 1.0, lineType=cv2.LINE_AA, shift=4)
    top, chin = face_points[:, 1].min(), face_points[:, 1].max()
    face_height = max(chin - top, 1.0)
    rows = np.arange(height, dtype=np.float32) + 0.5
    above = 1.0 - smoothstep((rows - chin - CHIN_MARGIN * face_height) / (CHIN_RAMP * face_height))
    person = np.maximum(np.clip(person, 0.0, 1.0), hull)
    head = np.maximum(person * above[:, None], hull)
    return np.stack((1.0 - person, head, person - head)).astype(np.float32)


class MediaPipeFaceParser(FaceParser):
    """Default parser: MediaPipe selfie segmentation + the face-mesh hull (module docstring)."""

    def parse(self, images: torch.Tensor, face_points: torch.Tensor) -> torch.Tensor:
        from talkinghead.face.detection import person_mask

        pixels = to_uint8(images)
        points = face_points.detach().float().cpu().numpy()
        labels = [outer_labels(person_mask(image), face) for image, face in zip(pixels, points, strict=True)]
        return torch.from_numpy(np.stack(labels)).to(images.device, images.dtype)


def make_face_parser(name: str = "mediapipe") -> FaceParser:
    """``"mediapipe"`` (default) or the import path ``package.module.ClassName`` of a :class:`FaceParser`
    subclass constructible without arguments."""
    if name == "mediapipe":
        return MediaPipeFaceParser()
    module_name, _, class_name = name.rpartition(".")
    if not module_name:
        raise ValueError(f"face parser must be 'mediapipe' or a 'package.module.Class' path, got {name!r}")
    parser = getattr(importlib.import_module(module_name), class_name)()
    if not isinstance(parser, FaceParser):
        raise TypeError(f"{name} is not a talkinghead.render.FaceParser")
    return parser
