"""Visemes: espeak-ng phonemes → coarticulated lip/jaw blendshape curves and lip vertex offsets.

Each espeak-ng phoneme mnemonic maps to one viseme, or to a sequence of them for diphthongs and r-coloured
vowels (``aI`` → AA then IH), which share the phoneme's duration equally (:data:`PHONEME_VISEMES`).
A viseme (:data:`VISEMES`) is a target of ARKit blendshape weights plus three lip-offset activations
(labiodental tuck, lip rounding, lip seal) and a dominance (strength ``alpha``, temporal spread ``tau`` in s).

Coarticulation follows Cohen & Massaro (1993): segment ``i`` (centre ``c_i``) has the dominance

    D_i(t) = alpha_i · exp(-(|t - c_i| / tau_i)²),   tau_i = max(tau_viseme, duration_i / 2),

and the curves are the dominance-weighted mean of the targets, ``F(t) = Σ D_i T_i / (ε + Σ D_i)``
(``ε`` pulls towards the neutral face far from any segment). Bilabials and labiodentals are strongly
dominant with a short spread, so lips close on /p b m/ and tuck on /f v/ whatever the neighbours;
alveolars and velars are weak, so the lips take the shape of the surrounding vowels (the rounding of
"soon" starts on the /s/); rounded vowels spread further. Pauses are segments of the neutral viseme,
and their spread grows with their length, so the mouth rests in long pauses and not in short ones.
Curves are sampled at frame centres ``(k + 0.5) / fps``.

Magnitudes: ``jawOpen`` peaks at 0.9 on open vowels (a, A:), 0.6-0.7 on mid vowels, 0.2-0.3 on close ones;
bilabials close the lips with ``mouthClose`` and ``mouthPress``; teeth-close consonants (s z, t d n l, k g,
tS dZ) and /f v/ partly seal the lips; pauses rest on the built-in face's neutral, slightly parted mouth.
Calibrated against real talking-head clips measured with MediaPipe FaceMesh (inner-lip opening, landmarks 13–14
over face height 10–152): real speakers' opening varies with a standard deviation of 0.02–0.03 over a sentence;
these targets give 0.023 on espeak-ng sentences at 130–200 words per minute. Sealing the pauses as well (0.8)
gives 0.024, but then the weight-free A/V-offset estimate (:mod:`talkinghead.data.preprocess.av_sync`) no longer
finds known shifts of the corpus' clips, so pauses stay unsealed.

Lip offsets (:func:`lip_offset_targets`) add what the blendshapes miss: on /f v/ the lower lip moves back and
up under the upper teeth, on rounded sounds (w, u:, oU, O:) the lips protrude and the mouth corners move in,
on teeth-close consonants the lips partly seal; at most 0.3 cm.
"""

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from talkinghead.audio.speech_synthesis import PhonemeEvent
from talkinghead.face.expression_basis import ARKIT_BLENDSHAPES


class Viseme(NamedTuple):
    """A mouth-shape target: blendshape weights, lip-offset activations and dominance parameters."""

    weights: dict[str, float]
    alpha: float
    tau: float
    tuck: float = 0.0
    round: float = 0.0
    seal: float = 0.0


def _both(name: str, value: float) -> dict[str, float]:
    return {f"{name}Left": value, f"{name}Right": value}


VISEMES: dict[str, Viseme] = {
    # silence: the neutral face
    "rest": Viseme({}, alpha=1.0, tau=0.08),
    # p b m: lips closed and pressed
    "PP": Viseme(
        {
            "jawOpen": 0.06,
            "mouthClose": 0.28,
            **_both("mouthPress", 0.45),
            "mouthRollLower": 0.15,
            "mouthRollUpper": 0.1,
        },
        alpha=8.0,
        tau=0.04,
    ),
    # f v: lower lip rolled in under the upper teeth
    "FF": Viseme(
        {"jawOpen": 0.1, "mouthRollLower": 0.5, **_both("mouthUpperUp", 0.2), "mouthClose": 0.05},
        alpha=6.0,
        tau=0.045,
        tuck=1.0,
        seal=0.3,
    ),
    # T D: tongue between the teeth, jaw slightly open
    "TH": Viseme(
        {"jawOpen": 0.18, **_both("mouthLowerDown", 0.15), **_both("mouthStretch", 0.05)}, alpha=0.5, tau=0.05
    ),
    # t d n l: lips follow the neighbours
    "DD": Viseme(
        {"jawOpen": 0.16, **_both("mouthStretch", 0.12), **_both("mouthLowerDown", 0.08)},
        alpha=0.4,
        tau=0.05,
        seal=0.2,
    ),
    # k g N: lips follow the neighbours, jaw a little lower
    "KK": Viseme({"jawOpen": 0.22, **_both("mouthStretch", 0.1)}, alpha=0.4, tau=0.05, seal=0.1),
    # h and unknown glides: weakest, takes the next vowel's shape
    "HH": Viseme({"jawOpen": 0.25}, alpha=0.15, tau=0.05),
    # tS dZ S Z: lips flared forward, teeth close
    "CH": Viseme(
        {
            "jawOpen": 0.12,
            "mouthFunnel": 0.5,
            "mouthPucker": 0.25,
            **_both("mouthUpperUp", 0.2),
            **_both("mouthLowerDown", 0.2),
        },
        alpha=2.5,
        tau=0.06,
        round=0.5,
        seal=0.2,
    ),
    # s z: teeth close, lips spread
    "SS": Viseme(
        {"jawOpen": 0.06, **_both("mouthStretch", 0.3), **_both("mouthSmile", 0.15), **_both("mouthUpperUp", 0.1)},
        alpha=1.0,
        tau=0.05,
        seal=0.4,
    ),
    # r: lips slightly rounded
    "RR": Viseme({"jawOpen": 0.14, "mouthPucker": 0.35, "mouthFunnel": 0.3}, alpha=1.5, tau=0.07, round=0.5),
    # w: strongly rounded and protruded
    "WW": Viseme({"jawOpen": 0.08, "mouthPucker": 0.85, "mouthFunnel": 0.35}, alpha=1.5, tau=0.09, round=1.0),
    # a A: aa: open
    "AA": Viseme(
        {"jawOpen": 0.9, **_both("mouthLowerDown", 0.25), **_both("mouthUpperUp", 0.1), **_both("mouthStretch", 0.1)},
        alpha=1.0,
        tau=0.07,
    ),
    # E e: mid-open, spread
    "EH": Viseme(
        {"jawOpen": 0.62, **_both("mouthStretch", 0.25), **_both("mouthSmile", 0.1), **_both("mouthLowerDown", 0.2)},
        alpha=1.0,
        tau=0.07,
    ),
    # i: I j: close, spread
    "IH": Viseme(
        {"jawOpen": 0.27, **_both("mouthStretch", 0.4), **_both("mouthSmile", 0.25), **_both("mouthUpperUp", 0.1)},
        alpha=1.0,
        tau=0.07,
    ),
    # V (strut): mid-open, relaxed
    "AH": Viseme({"jawOpen": 0.68, **_both("mouthLowerDown", 0.15)}, alpha=1.0, tau=0.07),
    # @ (schwa): relaxed, half open
    "UH": Viseme({"jawOpen": 0.38, **_both("mouthLowerDown", 0.05)}, alpha=0.7, tau=0.06),
    # 3: (nurse): half open, slightly rounded
    "ER": Viseme({"jawOpen": 0.38, "mouthPucker": 0.2, "mouthFunnel": 0.15}, alpha=1.0, tau=0.07, round=0.3),
    # 0 O: o: rounded open
    "OH": Viseme({"jawOpen": 0.68, "mouthFunnel": 0.5, "mouthPucker": 0.2}, alpha=1.2, tau=0.08, round=0.6),
    # u: U: rounded close
    "OO": Viseme({"jawOpen": 0.22, "mouthPucker": 0.7, "mouthFunnel": 0.45}, alpha=1.2, tau=0.09, round=1.0),
}
"""The visemes (targets at intensity 1)."""

PHONEME_VISEMES: dict[str, tuple[str, ...]] = {
    **{p: ("PP",) for p in ("p", "b", "m")},
    **{p: ("FF",) for p in ("f", "v")},
    **{p: ("TH",) for p in ("T", "D")},
    **{p: ("DD",) for p in ("t", "d", "n", "l", "t#", "t2", "n-", "?")},
    **{p: ("KK",) for p in ("k", "g", "N", "x")},
    **{p: ("HH",) for p in ("h", ";")},
    **{p: ("CH",) for p in ("tS", "dZ", "S", "Z")},
    **{p: ("SS",) for p in ("s", "z")},
    **{p: ("RR",) for p in ("r", "r-")},
    **{p: ("WW",) for p in ("w", "w#")},
    **{p: ("IH",) for p in ("i", "i:", "I", "I#", "I2", "j")},
    "E": ("EH",),
    **{p: ("AA",) for p in ("a", "a#", "aa", "A:")},
    "V": ("AH",),
    **{p: ("UH",) for p in ("@", "@2", "3")},
    "3:": ("ER",),
    **{p: ("OH",) for p in ("0", "O:", "O2")},
    **{p: ("OO",) for p in ("u:", "U")},
    **{p: ("AA", "IH") for p in ("aI", "aI2", "aI3")},
    "aU": ("AA", "OO"),
    "eI": ("EH", "IH"),
    "oU": ("OH", "OO"),
    "OI": ("OH", "IH"),
    "aI@": ("AA", "IH", "UH"),
    "i@": ("IH", "UH"),
    "e@": ("EH", "UH"),
    "U@": ("OO", "UH"),
    "@L": ("UH", "DD"),
    "A@": ("AA", "RR"),
    "O@": ("OH", "RR"),
    "o@": ("OH", "RR"),
    "i@3": ("IH", "RR"),
    "IR": ("IH", "RR"),
    "VR": ("AH", "RR"),
}
"""espeak-ng English phoneme mnemonics → visemes (in order, sharing the phoneme's duration)."""

_VOWEL_INITIALS = frozenset("aeiouAEIOUV03@")
_BACKGROUND_DOMINANCE = 1e-3
_CHANNELS = len(ARKIT_BLENDSHAPES) + 3  # blendshapes, tuck, round, seal
_MAX_OFFSET_CM = 0.3
_TUCK_CM = np.array([0.0, 0.12, -0.25])  # lower lip under the upper teeth: up and back
_PROTRUDE_CM = 0.2
_CORNER_INWARD = 0.1  # fraction of the corner's distance from the mouth centre
_SEAL_MIDDLE = 0.2  # the inner-lip gap is measured within this fraction of the half mouth width of the centre


def visemes_of(symbol: str) -> tuple[str, ...]:
    """Visemes of an espeak-ng phoneme mnemonic.

    Pauses (``_``, ``_:``, …) are ``rest``. A mnemonic missing from :data:`PHONEME_VISEMES` is looked up
    without its trailing variant marks (digits, ``#``, ``-``: ``@5`` → ``@``); failing that, a vowel
    becomes ``UH`` and anything else ``HH`` (a weak viseme that follows its neighbours).
    """
    if symbol.startswith("_"):
        return ("rest",)
    if symbol in PHONEME_VISEMES:
        return PHONEME_VISEMES[symbol]
    stem = symbol.rstrip("0123456789#-")
    if stem in PHONEME_VISEMES:
        return PHONEME_VISEMES[stem]
    return ("UH",) if symbol[:1] in _VOWEL_INITIALS else ("HH",)


def viseme_curves(phonemes: Sequence[PhonemeEvent], num_frames: int, fps: float, intensity: float = 1.0) -> np.ndarray:
    """Coarticulated blendshape curves ``(num_frames, 52)`` float32 in [0, 1], ARKit order.

    Only mouth and jaw shapes are non-zero. ``intensity`` scales every target (articulation strength of a
    speaker; 1 is the table).
    """
    blended = _blend(phonemes, num_frames, fps)
    return np.clip(blended[:, : len(ARKIT_BLENDSHAPES)] * intensity, 0.0, 1.0).astype(np.float32)


def lip_offset_targets(
    phonemes: Sequence[PhonemeEvent], lip_rest: np.ndarray, num_frames: int, fps: float
) -> np.ndarray:
    """Phoneme-specific lip vertex offsets ``(num_frames, L, 3)`` float32 in cm.

    ``lip_rest`` (L, 3) are the lip vertices at rest (cm; +x image right, +y up, +z towards the camera).
    The mouth corners are the leftmost and rightmost of them; the lower lip is the vertices below the
    corners' mean height. Three offset fields are blended in time with the same dominance model as the
    blendshapes: the labiodental tuck (lower lip back and up, strongest at the middle), rounding (lips
    forward, corners towards the middle) and the seal (upper and lower lip each move half the rest gap
    between the inner lips towards the other, so at full seal the lips touch: the near-closure of
    teeth-close consonants, which the built-in face's slightly parted neutral mouth lacks). Every offset is
    at most 0.3 cm long.
    """
    blended = _blend(phonemes, num_frames, fps)
    fields = _offset_fields(np.asarray(lip_rest, dtype=np.float64))
    offsets = sum(blended[:, -3 + k, None, None] * field for k, field in enumerate(fields))
    length = np.linalg.norm(offsets, axis=-1, keepdims=True)
    offsets *= np.minimum(1.0, _MAX_OFFSET_CM / np.maximum(length, 1e-12))
    return offsets.astype(np.float32)


def _offset_fields(lip_rest: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lip offsets (L, 3) at full tuck, full rounding and full seal."""
    x, y = lip_rest[:, 0], lip_rest[:, 1]
    corners = (int(np.argmin(x)), int(np.argmax(x)))
    centre_x = lip_rest[list(corners), 0].mean()
    corner_y = lip_rest[list(corners), 1].mean()
    half_width = max((x.max() - x.min()) / 2.0, 1e-6)
    centrality = np.clip(1.0 - ((x - centre_x) / half_width) ** 2, 0.0, 1.0)
    lower = y < corner_y
    tuck = (lower * centrality)[:, None] * _TUCK_CM
    round_ = np.zeros_like(lip_rest)
    round_[:, 0] = -_CORNER_INWARD * (x - centre_x)
    round_[:, 2] = _PROTRUDE_CM * (0.5 + 0.5 * centrality)
    middle = np.abs(x - centre_x) < _SEAL_MIDDLE * half_width
    gap = max(y[middle & ~lower].min() - y[middle & lower].max(), 0.0) if (middle & lower).any() else 0.0
    seal = np.zeros_like(lip_rest)
    seal[:, 1] = np.where(lower, 0.5, -0.5) * gap * centrality
    return tuck, round_, seal


def _segments(phonemes: Sequence[PhonemeEvent]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per viseme segment: centre (s), alpha, tau (s) and target (C,)."""
    centres, alphas, taus, targets = [], [], [], []
    for phoneme in phonemes:
        names = visemes_of(phoneme.symbol)
        part = (phoneme.end - phoneme.start) / len(names)
        for k, name in enumerate(names):
            viseme = VISEMES[name]
            centres.append(phoneme.start + (k + 0.5) * part)
            alphas.append(viseme.alpha)
            taus.append(max(viseme.tau, part / 2.0))
            targets.append(_target_vector(name))
    if not centres:
        return np.zeros(0), np.zeros(0), np.ones(0), np.zeros((0, _CHANNELS))
    return np.array(centres), np.array(alphas), np.array(taus), np.stack(targets)


def _target_vector(name: str) -> np.ndarray:
    viseme = VISEMES[name]
    vector = np.zeros(_CHANNELS)
    for shape, weight in viseme.weights.items():
        vector[ARKIT_BLENDSHAPES.index(shape)] = weight
    vector[-3:] = viseme.tuck, viseme.round, viseme.seal
    return vector


def _blend(phonemes: Sequence[PhonemeEvent], num_frames: int, fps: float) -> np.ndarray:
    """Dominance-weighted targets ``(num_frames, C)`` at frame centres (Cohen-Massaro blending)."""
    centres, alphas, taus, targets = _segments(phonemes)
    times = (np.arange(num_frames) + 0.5) / fps
    dominance = alphas * np.exp(-(((times[:, None] - centres) / taus) ** 2))
    return dominance @ targets / (_BACKGROUND_DOMINANCE + dominance.sum(axis=1, keepdims=True))
