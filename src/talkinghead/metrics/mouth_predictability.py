"""How much of a real speaker's mouth opening its speech predicts: a linear yardstick for articulation goals.

A generated mouth is compared with the real one of the same clip (:func:`talkinghead.metrics.articulation.
opening_agreement`). What r a model can reach there depends on the clip: some speakers open their mouth with the
sound, others barely, and a clip whose audio is out of step with its video caps r for any model. This module
measures that on the real clips themselves, weight-free, with ridge regression (Hoerl & Kennard 1970) from
log-mel context to the inner-lip opening:

* **features**: the log-mel front end stage 1 uses (:class:`talkinghead.audio.encoders.MelEncoder`,
  :data:`N_MELS` bands), averaged to one row per 25-fps frame, standardised per clip and band (so level and
  microphone drop out), stacked over :data:`CONTEXT` frames before and after (edge frames repeated);
* **target**: the opening (:func:`talkinghead.face.mouth.inner_lip_opening`) standardised per clip;
* **same speaker**: fitted on the first :data:`TRAIN_FRACTION` of the clip, Pearson r on the rest;
* **other speakers**: fitted on every clip of the other identities, r on the whole of this clip (which that fit
  never saw).

The first bounds what a speaker-specific linear model gets from these features; the second is what speech alone
tells about an unseen speaker with the same features — the setting of a one-shot model, which sees one photo.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

from talkinghead.audio.encoders import MelEncoder
from talkinghead.face.mouth import pearson

N_MELS = 40
CONTEXT = (4, 4)  # frames before and after: ±160 ms, about a syllable each way
TRAIN_FRACTION = 0.7
# On standardised features; the same-speaker r of nine public clips moved 0.04 on average (0.10 at most) at 1000.
RIDGE_WEIGHT = 100.0


@dataclass(frozen=True)
class ClipPredictability:
    """Held-out Pearson r of the ridge prediction of one clip's opening (module docstring)."""

    frames: int
    same_speaker: float
    other_speakers: float


def standardised(values: np.ndarray) -> np.ndarray:
    """Zero mean and unit standard deviation per column (a constant column stays zero)."""
    values = np.asarray(values, dtype=np.float64)
    centred = values - values.mean(axis=0)
    spread = centred.std(axis=0)
    return centred / np.where(spread > 0, spread, 1.0)


def context_stack(rows: np.ndarray, context: tuple[int, int] = CONTEXT) -> np.ndarray:
    """(T, C) → (T, (before + 1 + after) · C): row ``t`` is rows ``t − before … t + after``, edges repeated."""
    before, after = context
    padded = np.concatenate([np.repeat(rows[:1], before, axis=0), rows, np.repeat(rows[-1:], after, axis=0)])
    length = len(rows)
    return np.concatenate([padded[k : k + length] for k in range(before + 1 + after)], axis=1)


def speech_features(audio: np.ndarray, num_frames: int, context: tuple[int, int] = CONTEXT) -> np.ndarray:
    """16-kHz speech → (num_frames, (before + 1 + after) · :data:`N_MELS`) standardised log-mel context."""
    encoder = MelEncoder(n_mels=N_MELS)
    with torch.no_grad():
        mel = encoder(torch.as_tensor(audio, dtype=torch.float32)[None], num_frames)[0]
    per_frame = mel.reshape(num_frames, encoder.frames_per_video_frame, N_MELS).mean(dim=1).numpy()
    return context_stack(standardised(per_frame), context)


def ridge_fit(features: np.ndarray, target: np.ndarray, weight: float = RIDGE_WEIGHT) -> tuple[np.ndarray, float]:
    """Coefficients and intercept minimising ``‖X w + b − y‖² + weight · ‖w‖²`` (intercept not penalised)."""
    mean_x, mean_y = features.mean(axis=0), float(target.mean())
    centred = features - mean_x
    gram = centred.T @ centred + weight * np.eye(features.shape[1])
    coefficients = scipy.linalg.solve(gram, centred.T @ (target - mean_y), assume_a="pos")
    return coefficients, mean_y - float(mean_x @ coefficients)


def held_out_r(features: np.ndarray, target: np.ndarray, train: tuple[np.ndarray, np.ndarray]) -> float:
    """Pearson r between ``target`` and the prediction of a ridge fitted on ``train = (features, target)``."""
    coefficients, intercept = ridge_fit(*train)
    return pearson(features @ coefficients + intercept, target)


def mouth_predictability(
    clips: Mapping[str, tuple[np.ndarray, np.ndarray]], identities: Mapping[str, str]
) -> dict[str, ClipPredictability]:
    """Per clip name: r on its last part from its own first part, and on all of it from the other identities.

    ``clips`` maps a name to ``(features, opening)`` (T rows each, :func:`speech_features` and the inner-lip
    opening of the same frames); ``identities`` maps every name to its speaker. A clip whose speaker has no
    other identity beside it gets ``nan`` for ``other_speakers``.
    """
    data = {name: (features, standardised(opening[:, None])[:, 0]) for name, (features, opening) in clips.items()}
    results = {}
    for name, (features, target) in data.items():
        cut = int(TRAIN_FRACTION * len(target))
        same = held_out_r(features[cut:], target[cut:], (features[:cut], target[:cut]))
        others = [data[other] for other in data if identities[other] != identities[name]]
        if others:
            train = (np.concatenate([f for f, _ in others]), np.concatenate([t for _, t in others]))
            other = held_out_r(features, target, train)
        else:
            other = float("nan")
        results[name] = ClipPredictability(frames=len(target), same_speaker=same, other_speakers=other)
    return results
