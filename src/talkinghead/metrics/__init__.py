"""Metrics that need no pretrained weights: stage-1 motion, head pose, mouth landmarks, image quality."""

from talkinghead.metrics.facial_motion import (
    FaceMeasurements,
    lip_vertex_error,
    mouth_opening,
    upper_face_dynamics_deviation,
)
from talkinghead.metrics.image import psnr, ssim
from talkinghead.metrics.landmarks import frame_mouth_landmark_distance, mouth_landmark_distance

__all__ = [
    "FaceMeasurements",
    "frame_mouth_landmark_distance",
    "lip_vertex_error",
    "mouth_landmark_distance",
    "mouth_opening",
    "psnr",
    "ssim",
    "upper_face_dynamics_deviation",
]
