"""One training sample (a clip): metadata, audio, 3DMM motion and frames, and its shard encoding.

A clip is stored as one WebDataset sample whose members share the clip id as key:

================  ==========================================================================
member            content
================  ==========================================================================
``meta.json``     clip id, identity id, source, fps, frame count, sample rate, crop box, fit
                  residual, camera {image_size, focal, distance} (UTF-8 JSON, sorted keys)
``audio.flac``    16 kHz mono, 24-bit FLAC (lossless for audio on the 2⁻²³ grid, see below)
``motion.npz``    ``alpha`` (K,), ``beta`` (T, 52), ``pose`` (T, 6), ``lip_offsets`` (T, L, 3),
                  ``landmarks`` (T, N, 2) pixel coordinates; float32, uncompressed
``frames.NNNNNN.jpg``  frame ``NNNNNN`` (RGB, JPEG quality 95, 4:4:4 chroma), optional
================  ==========================================================================

Frames are a JPEG sequence rather than one video stream because stage 2 needs two random frames of a
clip: decoding two JPEGs costs about 0.7 ms, decoding a whole 3-s lossless H.264 clip 30–120 ms (see
``benchmarks/bench_dataloading.py`` and the shard docs). Quality 95 with full-resolution chroma keeps
the error small (about 41 dB PSNR on a natural 256² portrait); the motion and audio round trips are
bit-exact.

Audio is held as float32 on the 24-bit PCM grid (multiples of 2⁻²³ in [-1, 1 - 2⁻²³]);
:class:`Clip` rounds to that grid on construction, so ``Clip.from_sample(clip.to_sample())``
reproduces every array exactly. The rounding error (≤ 2⁻²⁴) is below float32 resolution for |x| ≥ 0.5.

The WebDataset key is everything before the first dot of a member name, so clip ids are restricted to
letters, digits, ``_`` and ``-``.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np
import soundfile

from talkinghead.conventions import SAMPLE_RATE

JPEG_QUALITY = 95
MOTION_FIELDS = ("alpha", "beta", "pose", "lip_offsets", "landmarks")
CLIP_FIELDS = ("audio", *MOTION_FIELDS, "frames")
REQUIRED_META_KEYS = (
    "clip_id",
    "identity_id",
    "source",
    "fps",
    "num_frames",
    "sample_rate",
    "crop_box",
    "fit_residual",
    "camera",
)
META_KEY = "meta.json"
AUDIO_KEY = "audio.flac"
MOTION_KEY = "motion.npz"
_FRAME_KEY = re.compile(r"^frames\.(\d{6})\.jpg$")
_CLIP_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_PCM24_SCALE = 2**23
# Fixed zip timestamp so that encoding the same clip twice gives identical bytes (resumable shards).
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class ClipValidationError(ValueError):
    """A clip's arrays or metadata are missing, malformed or inconsistent with each other."""


def frame_key(index: int) -> str:
    """Sample member name of frame ``index``, e.g. ``frames.000012.jpg``."""
    return f"frames.{index:06d}.jpg"


def quantize_audio(audio: np.ndarray) -> np.ndarray:
    """Round float audio in [-1, 1] to the 24-bit PCM grid that ``audio.flac`` stores (float32)."""
    ints = np.clip(np.rint(np.asarray(audio, np.float64) * _PCM24_SCALE), -_PCM24_SCALE, _PCM24_SCALE - 1)
    return (ints / _PCM24_SCALE).astype(np.float32)


def encode_audio(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Mono float audio (S,) → 24-bit FLAC bytes."""
    ints = np.clip(np.rint(np.asarray(audio, np.float64) * _PCM24_SCALE), -_PCM24_SCALE, _PCM24_SCALE - 1)
    buffer = io.BytesIO()
    # libsndfile writes int32 samples to PCM_24 by keeping the upper 24 bits, hence the shift.
    soundfile.write(buffer, ints.astype(np.int32) << 8, sample_rate, format="FLAC", subtype="PCM_24")
    return buffer.getvalue()


def decode_audio(data: bytes) -> np.ndarray:
    """24-bit FLAC bytes → float32 (S,) on the 2⁻²³ grid (exact inverse of :func:`encode_audio`)."""
    ints, _ = soundfile.read(io.BytesIO(data), dtype="int32", always_2d=False)
    return ((ints >> 8) / _PCM24_SCALE).astype(np.float32)


def encode_motion(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Motion arrays → deterministic uncompressed ``.npz`` bytes (fixed member timestamps)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in MOTION_FIELDS:
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            with archive.open(info, "w") as member:
                np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
    return buffer.getvalue()


def decode_motion(data: bytes, names: Iterable[str] = MOTION_FIELDS) -> dict[str, np.ndarray]:
    """``.npz`` bytes → the requested motion arrays only."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in names}


def encode_frame(frame: np.ndarray) -> bytes:
    """RGB uint8 (H, W, 3) → JPEG bytes (quality :data:`JPEG_QUALITY`, 4:4:4 chroma)."""
    params = [
        cv2.IMWRITE_JPEG_QUALITY,
        JPEG_QUALITY,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
    ]
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ClipValidationError("JPEG encoding failed")
    return encoded.tobytes()


def decode_frame(data: bytes) -> np.ndarray:
    """JPEG bytes → RGB uint8 (H, W, 3); a corrupt image raises :class:`ValueError`."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("corrupt JPEG frame")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def encode_meta(meta: Mapping) -> bytes:
    """Metadata dict → UTF-8 JSON bytes with sorted keys (deterministic)."""
    return json.dumps(meta, sort_keys=True).encode("utf-8")


def decode_meta(data: bytes) -> dict:
    """``meta.json`` bytes → dict."""
    return json.loads(data.decode("utf-8"))


@dataclass
class Clip:
    """One clip's content; every array field except ``meta`` may be ``None`` when not loaded.

    Shapes (T = ``meta["num_frames"]``, S ≈ T·sample_rate/fps):
    ``audio`` (S,) float32 on the 24-bit grid, ``alpha`` (K,), ``beta`` (T, 52), ``pose`` (T, 6) as
    (pitch, yaw, roll, tx, ty, tz), ``lip_offsets`` (T, L, 3), ``landmarks`` (T, N, 2) pixel
    coordinates (all float32), ``frames`` (T, H, W, 3) uint8 RGB.

    Construction validates what is present and converts arrays to their canonical dtypes; a problem
    raises :class:`ClipValidationError` naming the clip and the field.
    """

    meta: dict
    audio: np.ndarray | None = None
    alpha: np.ndarray | None = None
    beta: np.ndarray | None = None
    pose: np.ndarray | None = None
    lip_offsets: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    frames: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._validate_meta()
        if self.audio is not None:
            self.audio = quantize_audio(self._checked_audio())
        for name in MOTION_FIELDS:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, np.ascontiguousarray(value, dtype=np.float32))
        if self.frames is not None:
            self.frames = np.ascontiguousarray(self.frames)
        self._validate_arrays()

    @property
    def clip_id(self) -> str:
        return self.meta["clip_id"]

    @property
    def identity_id(self) -> str:
        return self.meta["identity_id"]

    @property
    def num_frames(self) -> int:
        return self.meta["num_frames"]

    @property
    def fps(self) -> float:
        return self.meta["fps"]

    @property
    def sample_rate(self) -> int:
        return self.meta["sample_rate"]

    def to_sample(self) -> dict[str, bytes]:
        """Encode into WebDataset sample members (``__key__`` plus ``{extension: bytes}``).

        Audio and all motion arrays are required; frames are optional.
        """
        missing = [name for name in ("audio", *MOTION_FIELDS) if getattr(self, name) is None]
        if missing:
            raise ClipValidationError(f"clip {self.clip_id}: cannot encode without {', '.join(missing)}")
        sample = {
            "__key__": self.clip_id,
            META_KEY: encode_meta(self.meta),
            AUDIO_KEY: encode_audio(self.audio, self.sample_rate),
            MOTION_KEY: encode_motion({name: getattr(self, name) for name in MOTION_FIELDS}),
        }
        if self.frames is not None:
            for index, frame in enumerate(self.frames):
                sample[frame_key(index)] = encode_frame(frame)
        return sample

    @classmethod
    def from_sample(cls, sample: Mapping[str, bytes], fields: Iterable[str] = CLIP_FIELDS) -> Clip:
        """Decode sample members into a clip, decoding only ``fields`` (a subset of :data:`CLIP_FIELDS`)."""
        fields = set(fields)
        unknown = fields - set(CLIP_FIELDS)
        if unknown:
            raise ValueError(f"unknown clip fields {sorted(unknown)}; choose from {CLIP_FIELDS}")
        meta = decode_meta(sample[META_KEY])
        arrays: dict[str, np.ndarray] = {}
        if "audio" in fields:
            arrays["audio"] = decode_audio(sample[AUDIO_KEY])
        motion_names = [name for name in MOTION_FIELDS if name in fields]
        if motion_names:
            arrays.update(decode_motion(sample[MOTION_KEY], motion_names))
        if "frames" in fields:
            frame_names = sorted(key for key in sample if _FRAME_KEY.match(key))
            if frame_names:
                arrays["frames"] = np.stack([decode_frame(sample[key]) for key in frame_names])
        return cls(meta=meta, **arrays)

    def _fail(self, message: str) -> None:
        raise ClipValidationError(f"clip {self.meta.get('clip_id', '?')}: {message}")

    def _validate_meta(self) -> None:
        if not isinstance(self.meta, dict):
            raise ClipValidationError(f"meta must be a dict, got {type(self.meta).__name__}")
        missing = [key for key in REQUIRED_META_KEYS if key not in self.meta]
        if missing:
            self._fail(f"meta lacks {', '.join(missing)}")
        if not isinstance(self.clip_id, str) or not _CLIP_ID.match(self.clip_id):
            self._fail("clip_id must be a non-empty string of letters, digits, '_' and '-'")
        if not isinstance(self.identity_id, str) or not self.identity_id:
            self._fail("identity_id must be a non-empty string")
        if not isinstance(self.num_frames, int) or self.num_frames < 1:
            self._fail(f"num_frames must be a positive int, got {self.num_frames!r}")
        if not self.fps > 0:
            self._fail(f"fps must be positive, got {self.fps!r}")
        if self.sample_rate != SAMPLE_RATE:
            self._fail(f"sample_rate must be {SAMPLE_RATE}, got {self.sample_rate!r}")
        if len(self.meta["crop_box"]) != 4:
            self._fail("crop_box must have 4 numbers (x0, y0, x1, y1)")
        camera = self.meta["camera"]
        if not isinstance(camera, dict) or {"image_size", "focal", "distance"} - camera.keys():
            self._fail("camera must be a dict with image_size, focal and distance")

    def _checked_audio(self) -> np.ndarray:
        audio = np.asarray(self.audio)
        if audio.ndim != 1 or not np.issubdtype(audio.dtype, np.floating):
            self._fail(f"audio must be mono float (S,), got {audio.dtype} {audio.shape}")
        expected = self.num_frames * self.sample_rate / self.fps
        if abs(audio.size - expected) > self.sample_rate / self.fps:
            self._fail(f"audio has {audio.size} samples, expected {expected:.0f} ± one video frame")
        if not np.all(np.isfinite(audio)) or np.abs(audio).max(initial=0.0) > 1.0:
            self._fail("audio must be finite and within [-1, 1]")
        return audio

    def _validate_arrays(self) -> None:
        frames = self.num_frames
        trailing = {"beta": 1, "pose": 1, "lip_offsets": 2, "landmarks": 2}
        for name, extra_dims in trailing.items():
            value = getattr(self, name)
            if value is None:
                continue
            if value.ndim != 1 + extra_dims or value.shape[0] != frames:
                self._fail(f"{name} has shape {value.shape}, expected ({frames}, …) with {1 + extra_dims} dims")
        if self.pose is not None and self.pose.shape[1] != 6:
            self._fail(f"pose must be (T, 6), got {self.pose.shape}")
        if self.lip_offsets is not None and self.lip_offsets.shape[2] != 3:
            self._fail(f"lip_offsets must be (T, L, 3), got {self.lip_offsets.shape}")
        if self.landmarks is not None and self.landmarks.shape[2] != 2:
            self._fail(f"landmarks must be (T, N, 2), got {self.landmarks.shape}")
        if self.alpha is not None and self.alpha.ndim != 1:
            self._fail(f"alpha must be (K,), got {self.alpha.shape}")
        for name in MOTION_FIELDS:
            value = getattr(self, name)
            if value is not None and not np.all(np.isfinite(value)):
                self._fail(f"{name} contains NaN or inf")
        if self.frames is not None:
            if self.frames.dtype != np.uint8 or self.frames.ndim != 4 or self.frames.shape[3] != 3:
                self._fail(f"frames must be uint8 (T, H, W, 3), got {self.frames.dtype} {self.frames.shape}")
            if self.frames.shape[0] != frames:
                self._fail(f"{self.frames.shape[0]} frames, meta says {frames}")
