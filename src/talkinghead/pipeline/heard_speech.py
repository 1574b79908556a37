"""What the stage-1 networks hear of the speech: the recording through the causal processors its
:class:`~talkinghead.pipeline.pipeline.GenerationParams` ask for, in order — the equaliser
(:mod:`talkinghead.audio.equalizer`, ``speech_spectrum_db``), then the gain control with its pause attenuation
(:mod:`talkinghead.audio.level`, ``speech_level_db``, ``pause_depth_db``, ``pause_margin_db``).

:class:`HeardSpeech` is the chain for a stream (:meth:`process` chunks of any length, :meth:`flush` at the end);
:func:`heard_speech` runs a whole recording through a fresh one, so offline and streamed generation hear the same
samples.
"""

from typing import TYPE_CHECKING

import numpy as np

from talkinghead.audio.equalizer import SpectrumEqualizer
from talkinghead.audio.level import LevelNormalizer

if TYPE_CHECKING:
    from talkinghead.pipeline.pipeline import GenerationParams


class HeardSpeech:
    """The causal chain of ``params`` (module docstring); with neither step on, samples pass unchanged. The pause
    attenuation is part of the gain control: with ``speech_level_db`` None the pauses pass unchanged too."""

    def __init__(self, params: "GenerationParams") -> None:
        self.steps: list[SpectrumEqualizer | LevelNormalizer] = []
        if params.speech_spectrum_db is not None:
            self.steps.append(SpectrumEqualizer(params.speech_spectrum_db))
        if params.speech_level_db is not None:
            pauses = {"pause_depth_db": params.pause_depth_db, "pause_margin_db": params.pause_margin_db}
            self.steps.append(LevelNormalizer(params.speech_level_db, **pauses))

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Append samples; → what the chain has finished (whole 40-ms frames once a step is on)."""
        samples = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        for step in self.steps:
            samples = step.process(samples)
        return samples

    def flush(self) -> np.ndarray:
        """The rest at the end of the speech: each step's held samples through the steps after it."""
        out = np.zeros(0, np.float32)
        for index, step in enumerate(self.steps):
            rest = step.flush()
            for later in self.steps[index + 1 :]:
                rest = later.process(rest)
            out = np.concatenate((out, rest))
        return out


def heard_speech(audio: np.ndarray, params: "GenerationParams") -> np.ndarray:
    """A whole recording through a fresh :class:`HeardSpeech` (the samples a stream of it would give)."""
    chain = HeardSpeech(params)
    return np.concatenate((chain.process(audio), chain.flush()))
