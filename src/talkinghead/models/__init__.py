"""Networks (pure ``nn.Module``, no Lightning).

Inference networks, one per stage, which the training modules wrap and the pipeline loads directly:
:class:`AudioToMotion` (stage 1a), :class:`HeadPoseGenerator` (stage 1b, frozen pose codebook inside) and
:class:`MeshToVideo` (stage 2). Their parts: the facial-motion generator and its attention pieces, the pose
VQ-VAE and mapper, the motion-VAE and frame generator, shared blocks (:mod:`talkinghead.models.blocks`). Training
only, and therefore not imported here (inference never loads them): the discriminator and perceptual networks
inside :class:`~talkinghead.models.losses.MeshToVideoLoss` (:mod:`talkinghead.models.losses`,
:mod:`~talkinghead.models.discriminator`, :mod:`~talkinghead.models.perceptual`). Third-party scorers shared by the
evaluation and the preprocessing: SyncNet (:mod:`talkinghead.models.syncnet`), loaded with
:mod:`talkinghead.models.weights`.
"""

from talkinghead.models.audio_to_motion import AudioToMotion
from talkinghead.models.checkpoints import load_network
from talkinghead.models.facial_motion import FacialMotionGenerator, merge_blendshapes, split_blendshapes
from talkinghead.models.frame_generator import FrameGenerator
from talkinghead.models.head_pose import HeadPoseGenerator, freeze
from talkinghead.models.mesh_to_video import MeshToVideo
from talkinghead.models.motion_vae import DualBranchMotionVAE, kl_divergence
from talkinghead.models.pose_mapper import PoseMapper
from talkinghead.models.pose_vqvae import PoseVQVAE

__all__ = [
    "AudioToMotion",
    "DualBranchMotionVAE",
    "FacialMotionGenerator",
    "FrameGenerator",
    "HeadPoseGenerator",
    "MeshToVideo",
    "PoseMapper",
    "PoseVQVAE",
    "freeze",
    "kl_divergence",
    "load_network",
    "merge_blendshapes",
    "split_blendshapes",
]
