"""Thin LightningModules around the pure networks of :mod:`talkinghead.models` (one per training stage)."""

from talkinghead.lightning.facial_motion import FacialMotionModule
from talkinghead.lightning.motion_vae import MotionVAEGeneratorModule
from talkinghead.lightning.pose_mapper import PoseMapperModule
from talkinghead.lightning.pose_vqvae import PoseVQVAEModule

__all__ = ["FacialMotionModule", "MotionVAEGeneratorModule", "PoseMapperModule", "PoseVQVAEModule"]
