"""A portrait: a 256² face crop with its fitted mesh (α, β, P_ref, Eq. 4) and person mask.

A photo becomes a :class:`Portrait` by :func:`prepare_portrait`: detect the face (:mod:`talkinghead.face.detection`),
crop it as the crop camera frames the canonical face (:mod:`talkinghead.face.crop`), detect it again in the crop,
segment the person and fit the morphable model to the landmarks (:func:`talkinghead.face.fitting.fit_landmarks`).

Blendshapes alone do not close every mouth: the built-in model's neutral lips are parted, and a closed-mouth photo
is fitted with its lips 1–2 px further apart than the photo's (docs/RESULTS.md, twenty-fifth pass). The portrait
therefore keeps the lip landmarks' residual as its lip offsets O_lip (Eq. 3/4, the same residual the video fit
keeps per frame), so its mesh's lips are where the photo's are: the reference stage 2 warps from, in the synthetic
corpus and at inference alike.
"""

from dataclasses import dataclass

import numpy as np
import torch

from talkinghead.face.builtin import builtin_morphable_model
from talkinghead.face.camera import PerspectiveCamera
from talkinghead.face.crop import DEFAULT_CROP_SCALE, crop_box, crop_image
from talkinghead.face.detection import detect_face_landmarks, person_mask
from talkinghead.face.fitting import fit_landmarks, lip_offsets_and_residuals
from talkinghead.face.morphable_model import MorphableModel
from talkinghead.face.pose import apply_pose


@dataclass
class Portrait:
    """A face crop with its fitted mesh (Eq. 4 at P_ref) and person mask.

    Attributes:
        image: (256, 256, 3) uint8 RGB crop.
        landmarks: (468, 2) float32 FaceMesh landmarks in crop pixels (camera convention).
        landmark_depth: (468,) float32 MediaPipe relative depth in crop pixels (the fit's ``depth``).
        alpha, beta, pose: the fit: α (K_id,), β (52,), P_ref (6,) as float32 tensors.
        lip_offsets: O_lip (L, 3), model-frame cm: the lip landmarks' residual after α, β and P_ref (module
            docstring).
        fit_residual: root-mean-square reprojection error of α, β and P_ref over the 468 landmarks, pixels.
        person_mask: (256, 256) float32 in [0, 1], 1 on the person (selfie segmentation).
    """

    image: np.ndarray
    landmarks: np.ndarray
    landmark_depth: np.ndarray
    alpha: torch.Tensor
    beta: torch.Tensor
    pose: torch.Tensor
    lip_offsets: torch.Tensor
    fit_residual: float
    person_mask: np.ndarray

    def image_tensor(self) -> torch.Tensor:
        """The crop as a (3, 256, 256) float tensor in [0, 1], what the frame renderer warps."""
        return torch.from_numpy(self.image).permute(2, 0, 1).float() / 255.0

    def source_vertices(self, model: MorphableModel) -> torch.Tensor:
        """The fitted mesh posed at P_ref, (N, 3) world cm: ``(S̄ + αU_id + βU_exp + O_lip) ⊗ P_ref`` (Eq. 4)."""
        return apply_pose(model.vertices(self.alpha, self.beta, self.lip_offsets), self.pose)


def fit_portrait(
    image: np.ndarray,
    landmarks: np.ndarray,
    landmark_depth: np.ndarray,
    mask: np.ndarray,
    model: MorphableModel | None = None,
    camera: PerspectiveCamera | None = None,
) -> Portrait:
    """Fit α, β and P_ref (``fit_landmarks`` with MediaPipe's depth, expression on), then O_lip as the lip
    landmarks' residual, and build the Portrait."""
    model = model or builtin_morphable_model()
    camera = camera or PerspectiveCamera(image_size=image.shape[0])
    points = torch.from_numpy(np.ascontiguousarray(landmarks, dtype=np.float32))[None]
    fit = fit_landmarks(
        model,
        points,
        camera,
        depth=torch.from_numpy(np.ascontiguousarray(landmark_depth, dtype=np.float32))[None],
        fit_expression=True,
    )
    lip_offsets = lip_offsets_and_residuals(model, points, camera, fit.alpha[0], fit.beta, fit.pose)[0]
    return Portrait(
        image=image,
        landmarks=landmarks.astype(np.float32),
        landmark_depth=landmark_depth.astype(np.float32),
        alpha=fit.alpha[0].clone(),
        beta=fit.beta[0].clone(),
        pose=fit.pose[0].clone(),
        lip_offsets=lip_offsets[0],
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
