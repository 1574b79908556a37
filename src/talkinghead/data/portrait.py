"""Portraits for the synthetic corpus: detect, crop, fit the mesh (α, β, P_ref) and vary them per clip.

A photo becomes a :class:`Portrait`: a 256² face crop framed like the crop camera's default view, its
MediaPipe FaceMesh landmarks, the morphable model fitted to them (Eq. 4: ``(S̄ + αU_id + βU_exp) ⊗ P_ref``)
and a person mask from MediaPipe's selfie segmentation. :func:`vary_portrait` makes per-clip variants
(flip, crop jitter, colour and skin tone, background); identity reshaping by a random α happens in the
frame renderer (:mod:`talkinghead.data.frame_renderer`), which warps the fitted mesh onto one with another α.

Landmark pixels use the camera's convention (:mod:`talkinghead.face.camera`): origin at the image's
top-left corner, so MediaPipe's normalized ``(x, y)`` times the image size are camera pixels as they are.
"""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from talkinghead.face.camera import PerspectiveCamera
from talkinghead.face.fitting import fit_landmarks
from talkinghead.face.morphable_model import MorphableModel
from talkinghead.face.pose import apply_pose
from talkinghead.face.regions import mirror_permutation
from talkinghead.native_stderr import native_stderr_silenced

CROP_SIZE = 256
# The crop camera's default view shows the canonical mean face's landmarks in a box of 125 × 159 px
# (the 17.7-cm face of camera.py) centred at (128, 133) in 256²: the crop side is 256 / 159 ≈ 1.61 times
# the landmark box's longer side, and the box centre sits 5/256 ≈ 0.02 of the side below the crop centre.
DEFAULT_CROP_SCALE = 1.61
CROP_CENTRE_OFFSET = 0.02


MAX_FACES = 6


class NoFaceError(ValueError):
    """The image shows no face MediaPipe can find."""


@lru_cache(maxsize=1)
def _face_mesh():
    import mediapipe as mp

    with native_stderr_silenced():
        return mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=MAX_FACES, refine_landmarks=False)


@lru_cache(maxsize=1)
def _selfie_segmentation():
    import mediapipe as mp

    with native_stderr_silenced():
        return mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)


def detect_faces(image_rgb: np.ndarray) -> list[np.ndarray]:
    """FaceMesh landmarks (468, 3) of every face in an RGB uint8 image (H, W, 3), largest first.

    Columns are x, y in camera pixels and MediaPipe's relative depth z · W (pixels, smaller = nearer); "largest"
    is the area of the landmarks' bounding box. The FaceMesh solution (static images, up to
    :data:`MAX_FACES` faces, no iris refinement) is built once per process.
    """
    image_rgb = np.ascontiguousarray(image_rgb)
    if image_rgb.dtype != np.uint8 or image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image_rgb.dtype} {image_rgb.shape}")
    with native_stderr_silenced():
        result = _face_mesh().process(image_rgb)
    height, width = image_rgb.shape[:2]
    faces = [
        np.array([(p.x * width, p.y * height, p.z * width) for p in face.landmark], dtype=np.float32)
        for face in result.multi_face_landmarks or []
    ]
    return sorted(faces, key=lambda points: -float(np.prod(np.ptp(points[:, :2], axis=0))))


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


def crop_box(
    landmarks: np.ndarray, image_size: tuple[int, int], scale: float = DEFAULT_CROP_SCALE
) -> tuple[int, int, int]:
    """FOMM-style square crop (x0, y0, size) in pixels around the landmarks' bounding box.

    ``size = scale ×`` the box's longer side, centred on the box with the box centre
    :data:`CROP_CENTRE_OFFSET` of the side below the crop centre, so the face fills the crop as the crop
    camera frames the canonical face (see :data:`DEFAULT_CROP_SCALE`). The box may reach past the image;
    :func:`crop_image` pads. ``image_size`` (H, W) only bounds the size to the image's longer side × 2.
    """
    low, high = landmarks[:, :2].min(0), landmarks[:, :2].max(0)
    size = int(round(min(scale * float((high - low).max()), 2 * max(image_size))))
    centre_x, centre_y = (low + high) / 2.0
    x0 = int(round(centre_x - size / 2.0))
    y0 = int(round(centre_y - (0.5 + CROP_CENTRE_OFFSET) * size))
    return x0, y0, size


def crop_image(image: np.ndarray, box: tuple[int, int, int], out_size: int = CROP_SIZE) -> np.ndarray:
    """Cut a square box (x0, y0, size) from an image (edge-padded where it leaves it) and resize it.

    Shrinking uses ``cv2.INTER_AREA`` (OpenCV's area average, no aliasing); enlarging ``cv2.INTER_CUBIC``.
    """
    x0, y0, size = box
    height, width = image.shape[:2]
    pad = max(0, -x0, -y0, x0 + size - width, y0 + size - height)
    pad_width = ((pad, pad), (pad, pad)) + ((0, 0),) * (image.ndim - 2)
    padded = np.pad(image, pad_width, mode="edge") if pad else image
    patch = padded[y0 + pad : y0 + pad + size, x0 + pad : x0 + pad + size]
    interpolation = cv2.INTER_AREA if size >= out_size else cv2.INTER_CUBIC
    return cv2.resize(patch, (out_size, out_size), interpolation=interpolation)


@dataclass
class Portrait:
    """A face crop with its fitted mesh (Eq. 4 at P_ref) and person mask.

    Attributes:
        image: (256, 256, 3) uint8 RGB crop.
        landmarks: (468, 2) float32 FaceMesh landmarks in crop pixels (camera convention).
        landmark_depth: (468,) float32 MediaPipe relative depth in crop pixels (the fit's ``depth``).
        alpha, beta, pose: the fit: α (K_id,), β (52,), P_ref (6,) as float32 tensors.
        fit_residual: root-mean-square reprojection error of the fit over the 468 landmarks, pixels.
        person_mask: (256, 256) float32 in [0, 1], 1 on the person (selfie segmentation).
    """

    image: np.ndarray
    landmarks: np.ndarray
    landmark_depth: np.ndarray
    alpha: torch.Tensor
    beta: torch.Tensor
    pose: torch.Tensor
    fit_residual: float
    person_mask: np.ndarray

    @property
    def background_mask(self) -> np.ndarray:
        """(256, 256) float32, 1 on the background: ``1 − person_mask``."""
        return 1.0 - self.person_mask

    def image_tensor(self) -> torch.Tensor:
        """The crop as a (3, 256, 256) float tensor in [0, 1], what the frame renderer warps."""
        return torch.from_numpy(self.image).permute(2, 0, 1).float() / 255.0

    def source_vertices(self, model: MorphableModel) -> torch.Tensor:
        """The fitted mesh posed at P_ref, (N, 3) world cm: ``(S̄ + αU_id + βU_exp) ⊗ P_ref`` (Eq. 4)."""
        return apply_pose(model.vertices(self.alpha, self.beta), self.pose)


def _default_model() -> MorphableModel:
    from talkinghead.face.builtin import builtin_morphable_model

    return builtin_morphable_model()


def fit_portrait(
    image: np.ndarray,
    landmarks: np.ndarray,
    landmark_depth: np.ndarray,
    mask: np.ndarray,
    model: MorphableModel | None = None,
    camera: PerspectiveCamera | None = None,
) -> Portrait:
    """Fit α, β and P_ref (``fit_landmarks`` with MediaPipe's depth, expression on) and build the Portrait."""
    model = model or _default_model()
    camera = camera or PerspectiveCamera(image_size=image.shape[0])
    fit = fit_landmarks(
        model,
        torch.from_numpy(np.ascontiguousarray(landmarks, dtype=np.float32))[None],
        camera,
        depth=torch.from_numpy(np.ascontiguousarray(landmark_depth, dtype=np.float32))[None],
        fit_expression=True,
    )
    return Portrait(
        image=image,
        landmarks=landmarks.astype(np.float32),
        landmark_depth=landmark_depth.astype(np.float32),
        alpha=fit.alpha[0].clone(),
        beta=fit.beta[0].clone(),
        pose=fit.pose[0].clone(),
        fit_residual=float(fit.residual[0]),
        person_mask=mask.astype(np.float32),
    )


def prepare_portrait(
    image_rgb: np.ndarray,
    crop_scale: float = DEFAULT_CROP_SCALE,
    model: MorphableModel | None = None,
    camera: PerspectiveCamera | None = None,
) -> Portrait:
    """Photo (H, W, 3) uint8 → :class:`Portrait`: detect, crop to 256², re-detect on the crop, segment, fit."""
    box = crop_box(detect_face_landmarks(image_rgb), image_rgb.shape[:2], crop_scale)
    crop = crop_image(image_rgb, box)
    landmarks = detect_face_landmarks(crop)
    return fit_portrait(crop, landmarks[:, :2], landmarks[:, 2], person_mask(crop), model, camera)


def _random_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random background (size, size, 3) float32 in [0, 1]: a linear gradient or blurred noise."""
    if rng.random() < 0.5:
        angle = rng.uniform(0.0, 2.0 * np.pi)
        ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)
        t = 0.5 + 0.5 * (np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None]) / np.sqrt(2.0)
        start, end = rng.uniform(0.0, 1.0, (2, 3)).astype(np.float32)
        return start + t[..., None] * (end - start)
    base = rng.uniform(0.15, 0.85, 3)
    noise = (base + rng.uniform(-0.25, 0.25, (6, 6, 3))).astype(np.float32)
    smooth = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(cv2.GaussianBlur(smooth, (0, 0), size / 24.0), 0.0, 1.0)


def _shift_colours(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Hue/saturation/gamma jitter and a warm/cool skin-tone gain on a float RGB image in [0, 1]."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)  # float input: H in degrees, S and V in [0, 1]
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-8.0, 8.0)) % 360.0
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.75, 1.25), 0.0, 1.0)
    hsv[..., 2] = np.power(hsv[..., 2], rng.uniform(0.8, 1.25))
    shifted = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    tone = rng.uniform(-0.08, 0.08)  # > 0 warmer (more red, less blue), < 0 cooler
    gain = np.array([1.0 + tone, 1.0, 1.0 - tone], dtype=np.float32) * rng.uniform(0.85, 1.1)
    return np.clip(shifted * gain, 0.0, 1.0)


def vary_portrait(
    portrait: Portrait,
    rng: np.random.Generator,
    model: MorphableModel | None = None,
    camera: PerspectiveCamera | None = None,
    flip_probability: float = 0.5,
    max_scale: float = 0.08,
    max_shift: float = 0.04,
    max_rotation_deg: float = 5.0,
    background_probability: float = 0.5,
) -> Portrait:
    """A per-clip variant of a portrait, re-fitted (about 0.5 s) to its moved landmarks.

    * horizontal flip (``flip_probability``): the image and masks are mirrored, the landmarks mirrored
      (``x → W − x``) and renumbered with the mesh's mirror permutation, so landmark *i* stays vertex *i*;
    * crop/scale jitter: a similarity about the crop centre, scale ``1 ± max_scale``, shift
      ``± max_shift`` of the side, rotation ``± max_rotation_deg``; applied to image, mask and landmarks
      (MediaPipe's depth scales with it);
    * colour: hue, saturation, gamma and skin-tone shifts, on the person only (blended by the person mask);
    * background replacement (``background_probability``): a random gradient or blurred noise behind the
      person mask.
    """
    model = model or _default_model()
    size = portrait.image.shape[0]
    image = portrait.image.astype(np.float32) / 255.0
    mask = portrait.person_mask
    landmarks, depth = portrait.landmarks.copy(), portrait.landmark_depth.copy()
    if rng.random() < flip_probability:
        permutation = mirror_permutation(model.mean_shape.cpu().numpy())
        image, mask = image[:, ::-1], mask[:, ::-1]
        mirrored = np.stack((size - landmarks[:, 0], landmarks[:, 1]), axis=1)
        landmarks[permutation], depth[permutation] = mirrored, depth.copy()
    scale = 1.0 + rng.uniform(-max_scale, max_scale)
    shift = rng.uniform(-max_shift, max_shift, 2) * size
    # OpenCV's pixel centres are integers: camera pixel u is OpenCV's u − 0.5.
    matrix = cv2.getRotationMatrix2D((size / 2.0 - 0.5, size / 2.0 - 0.5), rng.uniform(-1, 1) * max_rotation_deg, scale)
    matrix[:, 2] += shift
    warp = dict(dsize=(size, size), flags=cv2.INTER_LINEAR)
    image = cv2.warpAffine(np.ascontiguousarray(image), matrix, borderMode=cv2.BORDER_REFLECT_101, **warp)
    mask = cv2.warpAffine(np.ascontiguousarray(mask), matrix, borderMode=cv2.BORDER_REPLICATE, **warp)
    landmarks = (landmarks - 0.5) @ matrix[:, :2].T + matrix[:, 2] + 0.5
    depth = depth * scale
    person = np.clip(mask, 0.0, 1.0)[..., None]
    image = person * _shift_colours(image, rng) + (1.0 - person) * image
    if rng.random() < background_probability:
        image = person * image + (1.0 - person) * _random_background(rng, size)
    image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return fit_portrait(image, landmarks.astype(np.float32), depth, mask, model, camera)


def load_image_rgb(path: str | Path | None = None) -> np.ndarray:
    """A photo as (H, W, 3) uint8 RGB, upright (EXIF orientation applied); ``None`` is scikit-image's bundled
    ``astronaut`` portrait.

    Grayscale, palette, RGBA/LA (composited on white), 16/32-bit integer, float and CMYK images are converted,
    not rejected (:func:`to_rgb8`); a file that is not a readable image raises ``ValueError`` naming it.
    """
    if path is None:
        return skimage.data.astronaut()
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"image {str(path)!r}: not a readable image ({error})") from None
    return to_rgb8(image)


def to_rgb8(image: Image.Image) -> np.ndarray:
    """Any Pillow image → (H, W, 3) uint8 RGB (alpha composited on white; high bit depths rescaled)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 1.0 if image.mode == "F" and values.max() <= 1.0 else (65535.0 if image.mode != "I" else values.max())
        gray = np.clip(values / max(top, 1e-12) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "P" or image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
