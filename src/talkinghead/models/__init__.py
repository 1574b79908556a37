"""Networks (pure ``nn.Module``, no Lightning): the stage-1 facial-motion generator and its attention pieces."""

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
from talkinghead.models.facial_motion import (
    FacialMotionGenerator,
    GenerationState,
    merge_blendshapes,
    split_blendshapes,
)

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
]
