"""Networks (pure ``nn.Module``, no Lightning).

Inference networks, one per stage, which the training modules wrap and the pipeline loads directly:
:class:`AudioToMotion` (stage 1a), :class:`HeadPoseGenerator` (stage 1b, frozen pose codebook inside) and
:class:`MeshToVideo` (stage 2). Their parts: the facial-motion generator and its attention pieces, the pose
VQ-VAE and mapper, the motion-VAE and frame generator, shared blocks (:mod:`talkinghead.models.blocks`). Training
only: the discriminator and perceptual networks inside :class:`MeshToVideoLoss`. Third-party scorers shared by
the evaluation and the preprocessing: SyncNet (:mod:`talkinghead.models.syncnet`), loaded with
:mod:`talkinghead.models.weights`.
"""

from talkinghead.models.audio_to_motion import AudioToMotion
from talkinghead.models.checkpoints import load_network
from talkinghead.models.discriminator import MultiScaleDiscriminator, PatchDiscriminator
from talkinghead.models.facial_motion import FacialMotionGenerator, merge_blendshapes, split_blendshapes
from talkinghead.models.frame_generator import FrameGenerator
from talkinghead.models.head_pose import HeadPoseGenerator, freeze
from talkinghead.models.losses import (
    MeshToVideoLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from talkinghead.models.mesh_to_video import MeshToVideo
from talkinghead.models.motion_vae import DualBranchMotionVAE, kl_divergence
from talkinghead.models.perceptual import GradientPyramid, VGG19Pyramid, build_perceptual_loss
from talkinghead.models.pose_mapper import PoseMapper
from talkinghead.models.pose_vqvae import PoseVQVAE

__all__ = [
    "AudioToMotion",
    "DualBranchMotionVAE",
    "FacialMotionGenerator",
    "FrameGenerator",
    "GradientPyramid",
    "HeadPoseGenerator",
    "MeshToVideo",
    "MeshToVideoLoss",
    "MultiScaleDiscriminator",
    "PatchDiscriminator",
    "PoseMapper",
    "PoseVQVAE",
    "VGG19Pyramid",
    "build_perceptual_loss",
    "discriminator_loss",
    "feature_matching_loss",
    "freeze",
    "generator_adversarial_loss",
    "kl_divergence",
    "load_network",
    "merge_blendshapes",
    "split_blendshapes",
]
