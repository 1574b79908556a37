"""Rendering for stage 2 of VividTalk: rasterizers, NCC projection textures (Eq. 9–10), lip heatmaps."""

from talkinghead.render.base import BACKGROUND_DEPTH, Rasterizer, RasterOutput
from talkinghead.render.face_parser import OUTER_CLASSES, FaceParser, MediaPipeFaceParser, make_face_parser
from talkinghead.render.factory import BACKENDS, make_rasterizer
from talkinghead.render.heatmaps import lip_heatmaps
from talkinghead.render.motion_inputs import MotionInputRenderer
from talkinghead.render.ncc import NCCRenderer, compose_projection_texture, ncc_colors
from talkinghead.render.torch_backend import TorchRasterizer

__all__ = [
    "BACKENDS",
    "BACKGROUND_DEPTH",
    "NCCRenderer",
    "RasterOutput",
    "Rasterizer",
    "TorchRasterizer",
    "compose_projection_texture",
    "lip_heatmaps",
    "make_rasterizer",
    "ncc_colors",
    "FaceParser",
    "MediaPipeFaceParser",
    "MotionInputRenderer",
    "OUTER_CLASSES",
    "make_face_parser",
]
