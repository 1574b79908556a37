"""Mouth landmark distance (LMD; Chen et al., "Lip movements generation at a glance", ECCV 2018).

Per frame, the mean L2 distance between corresponding mouth landmarks of the generated and the real face,
averaged over frames. With ``centre=True`` (the default) each frame's mouth landmarks are taken relative
to their own centroid first, so a head that sits elsewhere in the frame is not counted as a lip error and
only the mouth shape is compared. Units are those of the landmarks (the evaluation uses pixels of a 256²
face crop, see ``talkinghead.evaluation.video_metrics``).
"""

import torch

from talkinghead.face.detection import NoFaceError, detect_face_landmarks
from talkinghead.face.regions import lip_ids
from talkinghead.image_tensors import to_uint8


def mouth_landmark_distance(predicted: torch.Tensor, target: torch.Tensor, centre: bool = True) -> torch.Tensor:
    """(..., T, L, 2) × 2 → (...,): mean over frames and landmarks of the per-landmark L2 distance."""
    if centre:
        predicted = predicted - predicted.mean(dim=-2, keepdim=True)
        target = target - target.mean(dim=-2, keepdim=True)
    return (predicted - target).norm(dim=-1).mean(dim=(-2, -1))


def frame_mouth_landmark_distance(generated: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames (B, 3, H, W) in [0, 1] → (mouth landmark distance (B,) in pixels, detected (B,) bool).

    MediaPipe FaceMesh runs on both frames; the distance is :func:`mouth_landmark_distance` over the 40 lip
    landmarks (the built-in model's lip vertices are those FaceMesh points), uncentred: the frames are aligned
    crops. Where either frame has no face it is NaN and ``detected`` False.
    """
    lips = lip_ids()
    distances = []
    for fake, real in zip(to_uint8(generated), to_uint8(target), strict=True):
        try:
            a, b = (torch.from_numpy(detect_face_landmarks(x)[lips, :2])[None] for x in (fake, real))
        except NoFaceError:
            distances.append(float("nan"))
            continue
        distances.append(float(mouth_landmark_distance(a, b, centre=False)))
    distances = torch.tensor(distances)
    return distances, ~distances.isnan()
