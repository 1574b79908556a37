"""Per-clip variants of a portrait for the synthetic corpus: flip, crop jitter, colour, skin tone, background.

Identity reshaping by a random α happens in the frame renderer (:mod:`talkinghead.data.synthetic.frame_renderer`),
which warps the fitted mesh onto one with another α.
"""

import cv2
import numpy as np

from talkinghead.face.builtin import builtin_morphable_model
from talkinghead.face.morphable_model import MorphableModel
from talkinghead.face.portrait import Portrait
from talkinghead.face.regions import mirror_permutation


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


def portrait_variant(
    portrait: Portrait,
    rng: np.random.Generator,
    model: MorphableModel | None = None,
    flip_probability: float = 0.5,
    max_scale: float = 0.08,
    max_shift: float = 0.04,
    max_rotation_deg: float = 5.0,
    background_probability: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(image uint8, landmarks, landmark depth, person mask) of a per-clip variant of a portrait.

    ``fit_portrait(*portrait_variant(...))`` makes it a :class:`Portrait` (about 0.5 s: α, β and P_ref re-fitted to
    the moved landmarks).

    * horizontal flip (``flip_probability``): the image and masks are mirrored, the landmarks mirrored
      (``x → W − x``) and renumbered with the mesh's mirror permutation, so landmark *i* stays vertex *i*;
    * crop/scale jitter: a similarity about the crop centre, scale ``1 ± max_scale``, shift
      ``± max_shift`` of the side, rotation ``± max_rotation_deg``; applied to image, mask and landmarks
      (MediaPipe's depth scales with it);
    * colour: hue, saturation, gamma and skin-tone shifts, on the person only (blended by the person mask);
    * background replacement (``background_probability``): a random gradient or blurred noise behind the
      person mask.
    """
    model = model or builtin_morphable_model()
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
    return image, landmarks.astype(np.float32), depth, mask
