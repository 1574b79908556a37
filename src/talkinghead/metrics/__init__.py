"""Metrics that need no pretrained weights (stage 1 motion; later: HPD, landmark distance, PSNR/SSIM)."""

from talkinghead.metrics.facial_motion import (
    FaceMeasurements,
    lip_vertex_error,
    mouth_opening,
    upper_face_dynamics_deviation,
)

__all__ = ["FaceMeasurements", "lip_vertex_error", "mouth_opening", "upper_face_dynamics_deviation"]

from talkinghead.metrics.image import psnr, ssim  # noqa: E402
from talkinghead.metrics.landmarks import mouth_landmark_distance  # noqa: E402

__all__ += ["mouth_landmark_distance", "psnr", "ssim"]
