"""MediaPipe FaceMesh and selfie segmentation: the one wrapper for photos and videos.

:class:`FaceMeshDetector` holds one FaceMesh graph: ``video=False`` for independent photos (each image
detected from scratch), ``video=True`` for the frames of one video in order (the graph tracks the previous
frame's face). Faces come back largest first, "largest" being the area of the landmarks' bounding box.
:func:`detect_faces` and :func:`person_mask` use one photo detector and one segmenter per process.

Landmark pixels use the camera's convention (:mod:`talkinghead.face.camera`): origin at the image's top-left
corner, so MediaPipe's normalized ``(x, y)`` times the image size are camera pixels as they are; the third
column is MediaPipe's relative depth ``z · W`` (pixels, smaller = nearer).
"""

from functools import lru_cache

import numpy as np

from talkinghead.native_stderr import native_stderr_silenced

MAX_FACES = 6


class NoFaceError(ValueError):
    """The image shows no face MediaPipe can find."""


def landmark_box_area(points: np.ndarray) -> float:
    """Area of the bounding box of landmarks (N, 2+) in pixels², the measure of "largest face"."""
    return float(np.prod(np.ptp(points[:, :2], axis=0)))


class FaceMeshDetector:
    """One MediaPipe FaceMesh graph (module docstring).

    Args:
        video: track between consecutive frames of one video (make one detector per video) instead of
            detecting every image from scratch.
        max_faces: the most faces returned.
        refine: iris refinement, 478 landmarks instead of 468.
        detection_confidence, tracking_confidence: MediaPipe's thresholds.
    """

    def __init__(
        self,
        video: bool = False,
        max_faces: int = MAX_FACES,
        refine: bool = False,
        detection_confidence: float = 0.5,
        tracking_confidence: float = 0.5,
    ) -> None:
        import mediapipe as mp

        with native_stderr_silenced():
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=not video,
                max_num_faces=max_faces,
                refine_landmarks=refine,
                min_detection_confidence=detection_confidence,
                min_tracking_confidence=tracking_confidence,
            )

    def faces(self, image_rgb: np.ndarray) -> list[np.ndarray]:
        """Landmarks (N, 3) as (x, y, z · W) pixels of every face in an RGB uint8 image (H, W, 3), largest first."""
        image_rgb = np.ascontiguousarray(image_rgb)
        if image_rgb.dtype != np.uint8 or image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image_rgb.dtype} {image_rgb.shape}")
        with native_stderr_silenced():
            result = self._mesh.process(image_rgb)
        height, width = image_rgb.shape[:2]
        faces = [
            np.array([(p.x * width, p.y * height, p.z * width) for p in face.landmark], dtype=np.float32)
            for face in result.multi_face_landmarks or []
        ]
        return sorted(faces, key=lambda points: -landmark_box_area(points))

    def close(self) -> None:
        self._mesh.close()


@lru_cache(maxsize=1)
def _photo_detector() -> FaceMeshDetector:
    return FaceMeshDetector(video=False, max_faces=MAX_FACES, refine=False)


@lru_cache(maxsize=1)
def _selfie_segmentation():
    import mediapipe as mp

    with native_stderr_silenced():
        return mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)


def detect_faces(image_rgb: np.ndarray) -> list[np.ndarray]:
    """FaceMesh landmarks (468, 3) of every face in a photo, largest first (:meth:`FaceMeshDetector.faces` of the
    process's photo detector: up to :data:`MAX_FACES` faces, no iris refinement)."""
    return _photo_detector().faces(image_rgb)


def detect_face_landmarks(image_rgb: np.ndarray) -> np.ndarray:
    """The landmarks (468, 3) of the largest face (:func:`detect_faces`); :class:`NoFaceError` when none."""
    faces = detect_faces(image_rgb)
    if not faces:
        raise NoFaceError("MediaPipe FaceMesh found no face in the image")
    return faces[0]


def person_mask(image_rgb: np.ndarray) -> np.ndarray:
    """Soft person mask (H, W) float32 in [0, 1] from MediaPipe's selfie segmentation (built once)."""
    with native_stderr_silenced():
        result = _selfie_segmentation().process(np.ascontiguousarray(image_rgb))
    return result.segmentation_mask.astype(np.float32)
