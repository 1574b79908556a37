"""Inference: one portrait + one speech recording → a talking-head video (VividTalk §3.4, end to end)."""

from talkinghead.pipeline.inputs import GenerationInputError
from talkinghead.pipeline.pipeline import GenerationParams, GenerationResult, TalkingHeadPipeline

__all__ = ["GenerationInputError", "GenerationParams", "GenerationResult", "TalkingHeadPipeline"]
