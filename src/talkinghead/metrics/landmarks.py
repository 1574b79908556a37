"""Mouth landmark distance (LMD; Chen et al., "Lip movements generation at a glance", ECCV 2018).

Per frame, the mean L2 distance between corresponding mouth landmarks of the generated and the real face,
averaged over frames. With ``centre=True`` (the default) each frame's mouth landmarks are taken relative
to their own centroid first, so a head that sits elsewhere in the frame is not counted as a lip error and
only the mouth shape is compared. Units are those of the landmarks (the evaluation uses pixels of a 256²
face crop, see ``talkinghead.evaluation.video_metrics``).
"""

import torch


def mouth_landmark_distance(predicted: torch.Tensor, target: torch.Tensor, centre: bool = True) -> torch.Tensor:
    """(..., T, L, 2) × 2 → (...,): mean over frames and landmarks of the per-landmark L2 distance."""
    if centre:
        predicted = predicted - predicted.mean(dim=-2, keepdim=True)
        target = target - target.mean(dim=-2, keepdim=True)
    return (predicted - target).norm(dim=-1).mean(dim=(-2, -1))
