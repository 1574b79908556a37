"""Thin LightningModules around the pure networks of :mod:`talkinghead.models` (one per training stage)."""

from talkinghead.lightning.facial_motion import FacialMotionModule

__all__ = ["FacialMotionModule"]
