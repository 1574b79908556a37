"""The embedded synthetic talking-head corpus: every stage's ground truth is exact.

One *identity* is a portrait variation (flip, crop jitter, colour, background) with a random identity
α of the built-in model and one espeak-ng voice; it speaks :attr:`SynthConfig.clips_per_identity`
different random sentences. Per clip:

1. speech: espeak-ng audio (16 kHz) with its own phoneme timings (:mod:`~talkinghead.audio.speech_synthesis`);
2. motion: coarticulated viseme blendshapes + blinks + brow raises (β, T×52), phoneme lip offsets
   (O_lip, T×L×3), and a head-pose trajectory that follows the speech energy added to the portrait's
   fitted pose P_ref (:mod:`~talkinghead.data.synthetic.visemes`, :mod:`~talkinghead.data.synthetic.motion_synthesis`);
3. frames: the portrait warped from its fitted mesh to the driven mesh ``(S̄ + αU_id + βU_exp + O_lip) ⊗ P``
   (Eq. 4, 8) by :class:`~talkinghead.data.synthetic.frame_renderer.MeshWarpRenderer`, with a drawn mouth interior;
4. landmarks: the driven mesh's vertices projected by the crop camera.

With ``frames=False`` (``talkinghead-data synth --no-frames``) step 3 and the portrait fit are skipped: a corpus of
speech and motion for the facial-motion stage, about 40× cheaper to build.

Everything is a function of ``(seed, clip index)``, so a clip is identical whichever worker makes it and
a rerun reproduces the corpus byte for byte. The output folder records the settings its clips depend on
(:meth:`SynthConfig.settings`) in ``synth.json``: a rerun with the same ones resumes (finished shards are kept)
or, with more clips, extends the corpus; a rerun with other ones is refused. Limits: synthetic (espeak-ng)
speech; one real photo by default (scikit-image's ``astronaut``) — pass a folder of your own portraits with
``--images`` for real appearance variety.
"""

import json
import logging
import multiprocessing
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from talkinghead.audio.speech_synthesis import VOICES, random_sentence, synthesize
from talkinghead.conventions import FPS, SAMPLE_RATE
from talkinghead.data.clip import Clip
from talkinghead.data.shards import INDEX_NAME, ShardWriter, write_index, write_json_atomic
from talkinghead.data.synthetic.frame_renderer import MeshWarpRenderer
from talkinghead.data.synthetic.motion_synthesis import blink_curves, brow_curves, head_pose_trajectory
from talkinghead.data.synthetic.portrait_variation import portrait_variant
from talkinghead.data.synthetic.visemes import lip_offset_targets, viseme_curves
from talkinghead.face import (
    MorphableModel,
    PerspectiveCamera,
    apply_pose,
    builtin_identity_std,
    builtin_morphable_model,
)
from talkinghead.face.images import load_image_rgb
from talkinghead.face.portrait import Portrait, fit_portrait, prepare_portrait
from talkinghead.heap import retain_freed_memory
from talkinghead.image_tensors import to_uint8
from talkinghead.render import make_rasterizer

log = logging.getLogger(__name__)

RENDER_BATCH = 25
SETTINGS_NAME = "synth.json"


@dataclass(frozen=True)
class SynthConfig:
    """What ``talkinghead-data synth`` builds; the defaults (64 clips of 4 s): 4.5 s a clip on one core
    (``benchmarks/bench_synth.py``), 2 workers by default."""

    clips: int = 64
    seconds: float = 4.0
    seed: int = 0
    images: tuple[str, ...] = field(default_factory=tuple)
    clips_per_identity: int = 2
    clips_per_shard: int = 8
    identity_scale: float = 1.0  # α ~ N(0, (scale · std)²)
    frames: bool = True  # False: speech and motion only (module docstring)

    def settings(self) -> dict:
        """What the clips depend on, as JSON: every field but ``clips``, the images as absolute paths."""
        settings = asdict(self)
        del settings["clips"]
        settings["images"] = [str(Path(image).resolve()) for image in self.images]
        return settings

    def clip_id(self, index: int) -> str:
        return f"synth-{index:05d}"

    def identity_index(self, index: int) -> int:
        return index // self.clips_per_identity


@lru_cache(maxsize=8)
def _base_portrait(image: str | None) -> Portrait:
    return prepare_portrait(load_image_rgb(image))


@lru_cache(maxsize=1)
def _renderer() -> tuple[MeshWarpRenderer, MorphableModel]:
    model = builtin_morphable_model()
    return MeshWarpRenderer(model, PerspectiveCamera(), make_rasterizer("torch")), model


@lru_cache(maxsize=4)
def _identity(config: SynthConfig, identity: int) -> tuple[Portrait, np.ndarray, str]:
    """(portrait variation, α, voice) of one identity, a function of (seed, identity) only.

    Without frames the variant is drawn (so α and the voice are those of the framed corpus) but not fitted: the
    source portrait stands in, and only the head pose's constant P_ref differs from the framed corpus.
    """
    rng = np.random.default_rng([config.seed, identity, 0])
    sources = [None, *config.images]
    base = _base_portrait(sources[identity % len(sources)])
    variant = portrait_variant(base, rng)
    portrait = fit_portrait(*variant) if config.frames else base
    alpha = rng.normal(size=builtin_identity_std().shape[0]) * builtin_identity_std().numpy() * config.identity_scale
    return portrait, alpha.astype(np.float32), VOICES[int(rng.integers(len(VOICES)))]


def make_clip(config: SynthConfig, index: int) -> Clip:
    """Clip ``index`` of the corpus (see the module docstring)."""
    torch.set_num_threads(1)
    identity = config.identity_index(index)
    portrait, alpha, voice = _identity(config, identity)
    rng = np.random.default_rng([config.seed, identity, 1 + index])
    num_frames = int(round(config.seconds * FPS))
    num_samples = num_frames * SAMPLE_RATE // FPS
    words = max(3, int(config.seconds * 2.2))
    speech = synthesize(
        random_sentence(rng, words - 1, words + 2), voice, int(rng.integers(130, 200)), int(rng.integers(35, 65))
    )
    audio = np.zeros(num_samples, np.float32)
    audio[: min(num_samples, len(speech.audio))] = speech.audio[:num_samples]
    phonemes = [p for p in speech.phonemes if p.start < config.seconds]

    beta = viseme_curves(phonemes, num_frames, FPS, intensity=float(rng.uniform(0.8, 1.2)))
    beta = np.maximum(beta, np.maximum(blink_curves(num_frames, FPS, rng), brow_curves(phonemes, num_frames, FPS, rng)))
    renderer, model = _renderer()
    rest = model.vertices(torch.from_numpy(alpha))[model.lip_ids].numpy()
    lip_offsets = lip_offset_targets(phonemes, rest, num_frames, FPS)
    pose = portrait.pose.numpy()[None] + head_pose_trajectory(audio, SAMPLE_RATE, num_frames, FPS, rng)

    driven = apply_pose(
        model.vertices(torch.from_numpy(alpha), torch.from_numpy(beta), torch.from_numpy(lip_offsets)),
        torch.from_numpy(pose.astype(np.float32)),
    )
    frames = None
    if config.frames:
        source, image = portrait.source_vertices(model), portrait.image_tensor()
        frames = to_uint8(torch.cat([renderer.render(image, source, batch) for batch in driven.split(RENDER_BATCH)]))
    camera = renderer.camera
    meta = {
        "clip_id": config.clip_id(index),
        "identity_id": f"synth-id{identity:04d}",
        "source": "synth",
        "fps": FPS,
        "num_frames": num_frames,
        "sample_rate": SAMPLE_RATE,
        "crop_box": [0, 0, camera.image_size, camera.image_size],
        "fit_residual": float(portrait.fit_residual),
        "camera": {"image_size": camera.image_size, "focal": camera.focal, "distance": camera.distance},
        "text": speech.text,
        "voice": voice,
        "phonemes": [[p.symbol, round(p.start, 4), round(p.end, 4), p.stressed] for p in phonemes],
    }
    return Clip(
        meta=meta,
        audio=audio,
        alpha=alpha,
        beta=beta,
        pose=pose.astype(np.float32),
        lip_offsets=lip_offsets,
        landmarks=camera.project(driven)[..., :2].numpy(),
        frames=frames,
    )


def _make_clip_job(job: tuple[SynthConfig, int]) -> tuple[str, Clip]:
    config, index = job
    return config.clip_id(index), make_clip(config, index)


def check_settings(config: SynthConfig, out_dir: Path) -> None:
    """Check ``config``'s settings against those ``out_dir/synth.json`` records for the shards in ``out_dir``;
    record them there when ``out_dir`` holds no shards yet.

    Raises ``ValueError`` naming the differing settings, when ``out_dir``'s record is not readable, or when it holds
    more clips than ``config`` asks for (they would stay in its index); shards without a record (a corpus of an
    older version) are taken to have these settings, with a warning.
    """
    settings = config.settings()
    path = out_dir / SETTINGS_NAME
    if not (any(out_dir.glob("shard-*")) or (out_dir / INDEX_NAME).exists()):
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, settings)
        return
    if not path.exists():
        log.warning("%s has no %s (built by an older version): taken as built with these settings", out_dir, path.name)
        write_json_atomic(path, settings)
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        recorded = None
    if not isinstance(recorded, dict):
        raise ValueError(f"{out_dir} holds shards without a readable {SETTINGS_NAME}; use another --out")
    differing = [
        f"{name} {recorded.get(name)} (now {value})" for name, value in settings.items() if recorded.get(name) != value
    ]
    if differing:
        raise ValueError(
            f"{out_dir} was built with other settings: {', '.join(differing)}; rerun with those or use another --out"
        )
    index = out_dir / INDEX_NAME
    built = len(json.loads(index.read_text()).get("clips", {})) if index.exists() else 0
    if built > config.clips:
        raise ValueError(f"{out_dir} holds {built} clips, more than --clips {config.clips}; use another --out")


def build_corpus(config: SynthConfig, out_dir: str | Path, workers: int = 1, progress: bool = True) -> dict:
    """Write the corpus as shards + ``index.json`` under ``out_dir``; finished shards are kept (resume).

    Raises ``ValueError`` before any clip is made when ``out_dir`` holds shards of other settings
    (:func:`check_settings`). Every process that renders keeps its freed memory (:mod:`talkinghead.heap`): a clip's
    frames reuse the pages of the last one's instead of faulting in new ones (the same bytes; a framed clip in 4.5
    instead of 5.4 s, benchmarks/bench_synth.py).
    """
    check_settings(config, Path(out_dir))
    clip_ids = [config.clip_id(i) for i in range(config.clips)]
    with ShardWriter(out_dir, clip_ids, clips_per_shard=config.clips_per_shard) as writer:
        jobs = [(config, clip_ids.index(cid)) for cid in writer.todo]
        bar = tqdm(total=len(clip_ids), initial=len(clip_ids) - len(jobs), unit="clip", disable=not progress)
        if workers > 1 and len(jobs) > 1:
            with multiprocessing.get_context("spawn").Pool(workers, initializer=retain_freed_memory) as pool:
                for clip_id, clip in pool.imap(_make_clip_job, jobs, chunksize=config.clips_per_identity):
                    writer.put(clip_id, clip)
                    bar.update()
        else:
            retain_freed_memory()
            for job in jobs:
                writer.put(*_make_clip_job(job))
                bar.update()
        bar.close()
    return write_index(out_dir, seed=config.seed)
