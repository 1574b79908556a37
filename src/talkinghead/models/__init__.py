"""Networks (pure ``nn.Module``, no Lightning): the stage-1 facial-motion generator and its attention pieces;
the stage-2 motion-VAE, frame generator, discriminator and perceptual losses."""

from talkinghead.models.attention import (
    CausalDecoder,
    DecoderCache,
    DecoderLayer,
    PeriodicPositionalEncoding,
    alibi_slopes,
    alignment_mask,
    biased_causal_mask,
    periodic_positional_encoding,
)
from talkinghead.models.discriminator import (
    MultiScaleDiscriminator,
    PatchDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from talkinghead.models.facial_motion import (
    FacialMotionGenerator,
    GenerationState,
    merge_blendshapes,
    split_blendshapes,
)
from talkinghead.models.frame_generator import FrameGenerator, identity_grid, resize_flow, warp
from talkinghead.models.motion_vae import (
    DualBranchMotionVAE,
    FacialMotionVAE,
    Hourglass,
    MotionDecoder,
    MotionOutput,
    kl_divergence,
)
from talkinghead.models.perceptual import GradientPyramid, VGG19Pyramid, build_perceptual_loss

__all__ = [
    "CausalDecoder",
    "DecoderCache",
    "DecoderLayer",
    "FacialMotionGenerator",
    "GenerationState",
    "PeriodicPositionalEncoding",
    "alibi_slopes",
    "alignment_mask",
    "biased_causal_mask",
    "merge_blendshapes",
    "periodic_positional_encoding",
    "split_blendshapes",
    "DualBranchMotionVAE",
    "FacialMotionVAE",
    "FrameGenerator",
    "GradientPyramid",
    "Hourglass",
    "MotionDecoder",
    "MotionOutput",
    "MultiScaleDiscriminator",
    "PatchDiscriminator",
    "VGG19Pyramid",
    "build_perceptual_loss",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_adversarial_loss",
    "identity_grid",
    "kl_divergence",
    "resize_flow",
    "warp",
]
