"""The 3-D face core: morphable models (Eq. 1, 4), pose (Eq. 4, 8), camera and landmark fitting."""

from talkinghead.face.builtin import builtin_identity_std, builtin_morphable_model
from talkinghead.face.camera import PerspectiveCamera
from talkinghead.face.expression_basis import ARKIT_BLENDSHAPES, LIP_BLENDSHAPES, OTHER_BLENDSHAPES
from talkinghead.face.faceverse import FaceVerseFormatError, load_faceverse
from talkinghead.face.fitting import FitResult, SequenceFit, SequenceFitConfig, fit_landmarks, fit_sequence
from talkinghead.face.morphable_model import MorphableModel
from talkinghead.face.pose import apply_pose, compose_relative, matrix_to_pose, pose_to_matrix, relative_pose

__all__ = [
    "ARKIT_BLENDSHAPES",
    "LIP_BLENDSHAPES",
    "OTHER_BLENDSHAPES",
    "FaceVerseFormatError",
    "FitResult",
    "MorphableModel",
    "SequenceFit",
    "SequenceFitConfig",
    "PerspectiveCamera",
    "apply_pose",
    "builtin_identity_std",
    "builtin_morphable_model",
    "compose_relative",
    "fit_landmarks",
    "fit_sequence",
    "load_faceverse",
    "load_morphable_model",
    "matrix_to_pose",
    "pose_to_matrix",
    "relative_pose",
]


def load_morphable_model(source: str = "builtin", **kwargs) -> MorphableModel:
    """``"builtin"`` (the MediaPipe-topology model) or the path of a FaceVerse ``.npy`` file (the paper's)."""
    if source == "builtin":
        return builtin_morphable_model(**kwargs)
    return load_faceverse(source, **kwargs)
