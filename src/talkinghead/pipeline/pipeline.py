"""``TalkingHeadPipeline``: trained checkpoints → a talking-head video (VividTalk §3.4, inferred end to end).

Steps of :meth:`TalkingHeadPipeline.generate`:

1. portrait: load (any image mode), choose the face (:mod:`talkinghead.pipeline.inputs`), crop it to 256² with
   the corpus / preprocessing convention (:func:`talkinghead.face.crop.crop_box`) and fit α, β_ref, P_ref
   (:func:`talkinghead.face.portrait.fit_portrait`);
2. speech → 16 kHz mono (:func:`talkinghead.audio.load_audio`), ``T = ⌊25 · seconds⌋`` frames; what the
   stage-1 networks hear is brought to ``speech_level_db`` by a causal gain control that also turns its pauses
   down by ``pause_depth_db`` (:mod:`talkinghead.audio.level`), and on request to the long-term spectrum
   ``speech_spectrum_db`` by a causal equaliser before it (:mod:`talkinghead.audio.equalizer`); the video keeps
   the speech as given;
3. facial motion β̂, Ô_lip (stage 1, autoregressive with a key/value cache, Eq. 2–3), scaled by
   ``expression_scale`` (β clamped to [0, 1]);
4. head pose: the mapper's sampled codes decoded by the frozen codebook decoder, ``P⁰ + P̂_r`` with
   P⁰ = P_ref (Eq. 7–8, seeded), shifted by default so that its mean over the video is P_ref
   (``centre_pose``), or ``still`` (P_ref throughout), or a pose file's motion added to P_ref;
5. stage 2 in batches of ``batch_size`` frames: driven meshes (Eq. 4, 8), NCC rendering and the outer region
   (Eq. 9–10), motion-VAE flow + generator (:meth:`MeshToVideo.synthesize`);
6. each batch is encoded at once (H.264 yuv420p, 25 fps, the speech muxed as AAC) into a temporary file
   renamed over the output at the end (:class:`talkinghead.media.VideoWriter`); optionally pasted back
   into the full portrait (:mod:`talkinghead.pipeline.paste_back`) and/or written next to the NCC render
   as a side-by-side debug video.

Memory: images exist only one batch at a time, so a 10-minute speech needs no more image memory than a
10-second one. What grows with the length are the stage-1 parameter sequences (about 1 KB per frame: β,
pose, lip offsets), the audio and the stage-1 key/value caches (bounded by the networks' ``max_context``
when set), a few MB for ten minutes.
"""

import copy
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from talkinghead.audio.io import load_audio, num_video_frames
from talkinghead.audio.level import CORPUS_LEVEL_DB, PAUSE_DEPTH_DB, PAUSE_MARGIN_DB
from talkinghead.conventions import FPS, SAMPLE_RATE
from talkinghead.face.camera import PerspectiveCamera
from talkinghead.face.crop import crop_box, crop_image
from talkinghead.face.detection import detect_faces, person_mask
from talkinghead.face.portrait import Portrait, fit_portrait
from talkinghead.image_tensors import to_uint8
from talkinghead.media import VideoWriter
from talkinghead.models.audio_to_motion import AudioToMotion
from talkinghead.models.checkpoints import Network, UnreadableCheckpointError, build_network, read_checkpoint
from talkinghead.models.export import ExportError, export_files, is_export, is_hub_id, load_export, locate_export
from talkinghead.models.head_pose import HeadPoseGenerator
from talkinghead.models.mesh_to_video import MeshToVideo, PreparedReference
from talkinghead.pipeline.heard_speech import heard_speech
from talkinghead.pipeline.inputs import (
    GenerationInputError,
    centre_on,
    choose_face,
    follow,
    load_portrait_image,
    load_pose_file,
)
from talkinghead.pipeline.paste_back import PasteBack
from talkinghead.pipeline.streaming import StreamSession, stream_frames

CHECKPOINTS = {
    "facial_motion": "facial_motion.ckpt",
    "pose_mapper": "pose_mapper.ckpt",
    "motion_vae": "motion_vae.ckpt",
}


@dataclass(frozen=True)
class GenerationParams:
    """How to generate (the flags of ``talkinghead-generate``).

    Attributes:
        pose: ``"generated"`` (the pose mapper, sampled with ``seed``, ``temperature``, ``top_k``),
            ``"still"`` (the portrait's pose throughout) or the path of a pose file (.npy/.csv/video, see
            :mod:`talkinghead.pipeline.inputs`).
        seed: seed of the pose sampling; the same seed gives the same video.
        centre_pose: with a generated pose, shift the sampled trajectory by one constant so that its mean over the
            video is the portrait's pose (:func:`~talkinghead.pipeline.inputs.centre_on`): the head moves as
            sampled, around the pose the portrait shows. Sampled from P⁰ (Eq. 7–8), the trajectory drifts to an
            offset on real portraits and speech (a few degrees, half a centimetre), and stage 2 warping the
            portrait that much further opens its mouth less (docs/RESULTS.md, twenty-second pass). False keeps
            the trajectory as sampled (the paper's). A stream cannot know the mean of speech still to come, so
            :meth:`TalkingHeadPipeline.open_stream` always plays the trajectory as sampled.
        temperature, top_k: the mapper's sampling over code distances (temperature 0 = nearest code; the
            defaults, 1 and all codes, sample the distribution the mapper's code cross-entropy calibrates).
        expression_scale: multiplies β̂ (clamped to [0, 1]) and the lip offsets; 1 = as predicted; None (the
            default) = the facial-motion checkpoint's own calibration (:class:`~talkinghead.models.
            audio_to_motion.AudioToMotion` ``expression_scale``: 1 unless its config sets another).
        speech_level_db: the active-speech level (dBFS) stage 1 hears, reached by a causal gain control
            (:mod:`talkinghead.audio.level`); the default is the embedded corpus' level, None leaves the
            recording's own gain.
        speech_spectrum_db: the long-term spectrum (dB per octave band) stage 1 hears, reached by a causal
            equaliser before the gain control (:mod:`talkinghead.audio.equalizer`), e.g.
            :data:`~talkinghead.audio.spectrum.CORPUS_SPECTRUM_DB`, the embedded corpus'; None (the default)
            leaves the recording's own colour.
        pause_depth_db, pause_margin_db: the gain control turns down by ``pause_depth_db`` (20 dB by default) the
            frames more than ``pause_margin_db`` (10 dB) below the speech's active level
            (:mod:`talkinghead.audio.level`: the noise in a recording's pauses, which stage 1 would hear as quiet
            speech); 0 leaves the pauses at the gain. The attenuation is a step of the gain control: with
            ``speech_level_db`` None the pauses stay as recorded.
        batch_size: frames per stage-2 batch (memory ∝ batch size, not video length).
        stream_batch: a stream renders its ready frames once this many are ready (its first frame at once): each
            frame may wait ``stream_batch − 1`` frames longer, and stage 2 costs less per frame (on 2 CPU cores,
            tiny, with its drawn mouth interior: 13–17 ms per frame in threes, 12–16 in fours, which keeps every
            measured stream below 0.5 of real time, docs/PERFORMANCE.md); 1 = every frame as soon as it is ready.
        bf16: stage 2's networks in bfloat16 (:meth:`MeshToVideo.drive`): faster on CUDA and on CPUs with native
            bfloat16 (AVX-512 BF16, AMX), frames within rounding of float32; off by default (exact float32).
        full_frame: paste the 256² face back into the portrait (frames at most ``max_frame_side`` wide/high).
        face_index: which face when the image has several (0 = largest, the default).
        side_by_side: also write ``<out>_side_by_side.mp4`` (NCC mesh render | result).

    :meth:`check` rejects values outside these domains; :meth:`TalkingHeadPipeline.generate` and
    :meth:`TalkingHeadPipeline.open_stream` call it.
    """

    pose: str = "generated"
    seed: int = 0
    centre_pose: bool = True
    temperature: float = 1.0
    top_k: int | None = None
    expression_scale: float | None = None
    speech_level_db: float | None = CORPUS_LEVEL_DB
    speech_spectrum_db: tuple[float, ...] | None = None
    pause_depth_db: float = PAUSE_DEPTH_DB
    pause_margin_db: float = PAUSE_MARGIN_DB
    batch_size: int = 16
    stream_batch: int = 4
    bf16: bool = False
    full_frame: bool = False
    max_frame_side: int = 1280
    face_index: int | None = None
    side_by_side: bool = False

    def check(self, names: Mapping[str, str] | None = None, stream: bool = False) -> None:
        """Raise a one-line :class:`GenerationInputError` for the first value outside its domain: temperature,
        expression scale and pause depth finite and ≥ 0, the speech level finite, ``top_k`` None or ≥ 1, the
        batch sizes ≥ 1, and for a stream (``stream``) ``stream_batch`` at most ``batch_size`` (a stream renders
        its ready frames as one stage-2 batch). The message names each field by ``names[field]`` (e.g. the CLI's
        flags), else by the field's name."""

        def name(field_name: str) -> str:
            return (names or {}).get(field_name, field_name)

        temperature, top_k, scale = self.temperature, self.top_k, self.expression_scale
        level, depth = self.speech_level_db, self.pause_depth_db
        if not (math.isfinite(temperature) and temperature >= 0):
            raise GenerationInputError(f"{name('temperature')} must be 0 or more, got {temperature:g}")
        if top_k is not None and top_k < 1:
            raise GenerationInputError(f"{name('top_k')} must be 1 or more (None = all codes), got {top_k}")
        if scale is not None and not (math.isfinite(scale) and scale >= 0):
            raise GenerationInputError(f"{name('expression_scale')} must be 0 or more, got {scale:g}")
        if level is not None and not math.isfinite(level):
            raise GenerationInputError(f"{name('speech_level_db')} must be a finite level in dBFS, got {level:g}")
        if not (math.isfinite(depth) and depth >= 0):
            raise GenerationInputError(f"{name('pause_depth_db')} must be 0 or more dB, got {depth:g}")
        if self.batch_size < 1:
            raise GenerationInputError(f"{name('batch_size')} must be ≥ 1, got {self.batch_size}")
        if self.stream_batch < 1:
            raise GenerationInputError(f"{name('stream_batch')} must be ≥ 1, got {self.stream_batch}")
        if stream and self.stream_batch > self.batch_size:
            raise GenerationInputError(
                f"{name('stream_batch')} {self.stream_batch} exceeds {name('batch_size')} {self.batch_size}: "
                "a stream renders its ready frames as one stage-2 batch"
            )


@dataclass
class GenerationResult:
    """What :meth:`TalkingHeadPipeline.generate` made: paths, frame count, the driving sequences, notes."""

    video: Path
    side_by_side: Path | None
    num_frames: int
    poses: torch.Tensor
    beta: torch.Tensor
    notes: list[str] = field(default_factory=list)


@dataclass
class PreparedPortrait:
    """The original image, the crop box in it, the fitted 256² :class:`Portrait`, notes for the user."""

    image: np.ndarray
    box: tuple[int, int, int]
    portrait: Portrait
    notes: list[str]


def side_by_side_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}_side_by_side.mp4")


def check_output_path(out: str | Path) -> Path:
    """An ``.mp4`` path whose folder exists and is writable, else :class:`GenerationInputError`."""
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise GenerationInputError(f"output {str(out)!r}: unsupported container {out.suffix or '(none)'}; use .mp4")
    if out.is_dir():
        raise GenerationInputError(f"output {str(out)!r}: is a folder")
    if not out.parent.is_dir():
        raise GenerationInputError(f"output {str(out)!r}: folder {str(out.parent)!r} does not exist")
    if not os.access(out.parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise GenerationInputError(f"output {str(out)!r}: not writable")
    return out


def load_stage(network: type[Network], path: Path, stage: str) -> Network:
    """``network`` from the Lightning checkpoint ``path`` of ``stage``
    (:func:`~talkinghead.models.checkpoints.build_network`); a file ``torch.load`` cannot read, or whose
    hyperparameters or weights do not make ``network`` (another stage's checkpoint), is a one-line
    :class:`GenerationInputError` naming it."""
    try:
        checkpoint = read_checkpoint(path)
    except UnreadableCheckpointError as error:
        raise GenerationInputError(f"checkpoint {str(path)!r} ({stage}): not a readable checkpoint") from error
    try:
        return build_network(network, checkpoint, f"checkpoint {path}")
    except (AttributeError, KeyError, TypeError, ValueError, RuntimeError) as error:
        raise GenerationInputError(
            f"checkpoint {str(path)!r}: not a {stage} checkpoint (its hyperparameters and weights do not fit the "
            f"{network.__name__} network)"
        ) from error


class TalkingHeadPipeline:
    """The three inference networks on one device: audio → facial motion, audio → head pose (the frozen pose
    codebook inside), mesh → video. They are plain ``nn.Module``s; the training code is never imported.

    The mesh-to-video network is kept in the channels-last memory format (its convolution weights, and so its
    activations): oneDNN's convolutions run its narrow layers faster that way (docs/PERFORMANCE.md), with the
    same frames up to float rounding."""

    def __init__(
        self,
        facial_motion: AudioToMotion,
        pose_mapper: HeadPoseGenerator,
        motion_vae: MeshToVideo,
        device: str | torch.device = "cpu",
    ):
        self.device = torch.device(device)
        # Landmark fitting (a few hundred small Adam steps on one portrait or pose video) runs on the CPU,
        # where it is fastest, whatever device the networks use; the fitted tensors move to that device later.
        self.fitting_face = copy.deepcopy(facial_motion.face).cpu()
        self.facial_motion = facial_motion.eval().to(self.device)
        self.pose_mapper = pose_mapper.eval().to(self.device)
        self.motion_vae = motion_vae.eval().to(self.device, memory_format=torch.channels_last)
        self.face = facial_motion.face
        self.camera = PerspectiveCamera()
        self._prepared: PreparedPortrait | None = None
        self._prepared_key: tuple | None = None

    @classmethod
    def from_checkpoints(
        cls,
        directory: str | Path | None = None,
        *,
        facial_motion: str | Path | None = None,
        pose_mapper: str | Path | None = None,
        motion_vae: str | Path | None = None,
        device: str | torch.device = "cpu",
    ) -> "TalkingHeadPipeline":
        """Load ``facial_motion.ckpt``, ``pose_mapper.ckpt`` and ``motion_vae.ckpt`` from ``directory``;
        an explicit path overrides its file. Missing files are a :class:`GenerationInputError`."""
        given = {"facial_motion": facial_motion, "pose_mapper": pose_mapper, "motion_vae": motion_vae}
        paths = {}
        for stage, name in CHECKPOINTS.items():
            path = given[stage] or (Path(directory) / name if directory is not None else None)
            if path is None:
                raise GenerationInputError(f"no checkpoint for {stage}: pass a checkpoint folder or its path")
            if not Path(path).is_file():
                raise GenerationInputError(
                    f"checkpoint {str(path)!r} ({stage}): no such file (train the stages first, e.g. `make demo`)"
                )
            paths[stage] = Path(path)
        return cls(
            load_stage(AudioToMotion, paths["facial_motion"], "facial_motion"),
            load_stage(HeadPoseGenerator, paths["pose_mapper"], "pose_mapper"),
            load_stage(MeshToVideo, paths["motion_vae"], "motion_vae"),
            device=device,
        )

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        device: str | torch.device = "cpu",
        revision: str | None = None,
        cache_dir: str | Path | None = None,
    ) -> "TalkingHeadPipeline":
        """Load an export of ``tools/export_weights.py`` (safetensors + JSON, :mod:`talkinghead.models.export`):
        a local folder, or a Hugging Face Hub id (``revision``) looked up in the local hub cache (``cache_dir`` or
        ``HF_HUB_CACHE``) first and downloaded only when missing there and ``HF_HUB_OFFLINE`` is unset. A folder or
        id that is not a complete export is a :class:`GenerationInputError`."""
        try:
            networks = load_export(locate_export(name_or_path, revision, cache_dir))
        except ExportError as error:
            raise GenerationInputError(str(error)) from None
        return cls(networks["audio_to_motion"], networks["head_pose"], networks["mesh_to_video"], device=device)

    @classmethod
    def load(
        cls,
        source: str | Path,
        *,
        facial_motion: str | Path | None = None,
        pose_mapper: str | Path | None = None,
        motion_vae: str | Path | None = None,
        device: str | torch.device = "cpu",
    ) -> "TalkingHeadPipeline":
        """What ``--checkpoints`` names: an export folder, or a hub id when no such path exists
        (:meth:`from_pretrained`), else a folder of Lightning checkpoints (:meth:`from_checkpoints`, which an
        explicit checkpoint path always selects). A folder holding neither is a :class:`GenerationInputError`."""
        folder = Path(source)
        if not any((facial_motion, pose_mapper, motion_vae)):
            if is_export(folder) or (not folder.exists() and is_hub_id(str(source))):
                return cls.from_pretrained(source, device=device)
            if folder.is_dir() and not any((folder / name).is_file() for name in CHECKPOINTS.values()):
                raise GenerationInputError(
                    f"--checkpoints {str(source)!r}: holds neither Lightning checkpoints "
                    f"({', '.join(CHECKPOINTS.values())}) nor an export ({', '.join(export_files())})"
                )
        return cls.from_checkpoints(
            source, facial_motion=facial_motion, pose_mapper=pose_mapper, motion_vae=motion_vae, device=device
        )

    def prepare(self, image: np.ndarray, face_index: int | None = None, name: str = "portrait") -> PreparedPortrait:
        """Choose the face, crop it to 256² (corpus convention) and fit α, β_ref, P_ref."""
        landmarks, notes = choose_face(image, face_index, name)
        box = crop_box(landmarks, image.shape[:2])
        crop = crop_image(image, box)
        faces = detect_faces(crop)
        if not faces:
            raise GenerationInputError(f"image {name!r}: the face is not found again in its 256² crop")
        points = faces[0]
        portrait = fit_portrait(crop, points[:, :2], points[:, 2], person_mask(crop), self.fitting_face, self.camera)
        return PreparedPortrait(image, box, portrait, notes)

    def prepare_file(self, image: str | Path, face_index: int | None = None) -> PreparedPortrait:
        """:meth:`prepare` of an image file; the last result is reused while the file and face are unchanged
        (several videos of one portrait fit it once)."""
        path = Path(image)
        stat = path.stat() if path.is_file() else None
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, face_index) if stat else None
        if key is None or key != self._prepared_key:
            self._prepared = self.prepare(load_portrait_image(path), face_index, str(image))
            self._prepared_key = key
        return self._prepared

    @torch.no_grad()
    def motion(
        self, prepared: PreparedPortrait, audio: np.ndarray, params: GenerationParams
    ) -> dict[str, torch.Tensor]:
        """Stage 1: β (T, 52), lip offsets (T, L, 3) and absolute poses (T, 6) for ``T = ⌊25 · seconds⌋``."""
        num_frames = num_video_frames(len(audio), FPS, SAMPLE_RATE)
        audio = heard_speech(audio, params)
        speech = torch.from_numpy(audio)[None].to(self.device)
        alpha = prepared.portrait.alpha[None].to(self.device)
        reference_pose = prepared.portrait.pose[None].to(self.device)
        out = self.facial_motion(speech, alpha, num_frames)
        face = self.facial_motion.scale_expression(out["beta"][0], out["lip_offsets"][0], params.expression_scale)
        if params.pose == "generated":
            generator = torch.Generator(device=self.device).manual_seed(params.seed)
            poses = self.pose_mapper(
                speech, alpha, reference_pose, num_frames, params.temperature, params.top_k, generator
            )[0]
            if params.centre_pose:
                poses = centre_on(poses, reference_pose[0])
        elif params.pose == "still":
            poses = reference_pose.expand(num_frames, -1)
        else:
            relative = load_pose_file(params.pose, self.fitting_face, self.camera).to(self.device)
            poses = reference_pose + follow(relative, num_frames)
        return {**face, "pose": poses}

    def stage2_reference(self, prepared: PreparedPortrait) -> PreparedReference:
        """The portrait as stage 2 takes it: image, reference parameters, parsed outer region and the reference's
        input rendering (:meth:`MeshToVideo.prepare_reference`), made once per portrait."""
        portrait = prepared.portrait
        reference = {
            "alpha": portrait.alpha[None],
            "beta": portrait.beta[None],
            "pose": portrait.pose[None],
            "lip_offsets": portrait.lip_offsets[None],
        }
        reference = {key: value.to(self.device) for key, value in reference.items()}
        return self.motion_vae.prepare_reference(portrait.image_tensor()[None], reference)

    def frames(
        self,
        prepared: PreparedPortrait,
        motion: dict[str, torch.Tensor],
        batch_size: int,
        stage2_reference: PreparedReference | None = None,
        bf16: bool = False,
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Stage 2, one batch of ``batch_size`` frames at a time: :meth:`MeshToVideo.synthesize`'s
        outputs (``frame``, ``pt_driven``, …) for consecutive slices of ``motion``; the reference is parsed and
        rendered once (or given: :meth:`stage2_reference`'s result, kept by a stream across calls); ``bf16`` as
        in :class:`GenerationParams`."""
        reference = stage2_reference or self.stage2_reference(prepared)
        for start in range(0, len(motion["pose"]), batch_size):
            driven = {key: motion[key][start : start + batch_size] for key in ("beta", "pose", "lip_offsets")}
            yield self.motion_vae.drive(reference, driven, bf16)

    def generate(
        self,
        image: str | Path,
        audio: str | Path,
        out: str | Path,
        params: GenerationParams | None = None,
        progress: bool = True,
        on_frames: Callable[[int, int], None] | None = None,
    ) -> GenerationResult:
        """Portrait file + speech file → ``out`` (mp4); see the module docstring for the steps. ``progress``
        shows a terminal progress bar; ``on_frames(done, total)`` is called after each encoded batch."""
        params = params or GenerationParams()
        params.check()
        out = check_output_path(out)
        speech = load_audio(audio)
        prepared = self.prepare_file(image, params.face_index)
        motion = self.motion(prepared, speech, params)
        paste = PasteBack(prepared.image, prepared.box, params.max_frame_side) if params.full_frame else None
        debug_path = side_by_side_path(out) if params.side_by_side else None
        num_frames = len(motion["pose"])
        with ExitStack() as stack:
            writer = stack.enter_context(VideoWriter(out, FPS, speech, SAMPLE_RATE))
            debug = stack.enter_context(VideoWriter(debug_path, FPS, speech, SAMPLE_RATE)) if debug_path else None
            bar = stack.enter_context(tqdm(total=num_frames, unit="frame", disable=not progress, desc="generating"))
            done = 0
            for result in self.frames(prepared, motion, params.batch_size, bf16=params.bf16):
                frames = to_uint8(result["frame"])
                writer.write(np.stack([paste(frame) for frame in frames]) if paste else frames)
                if debug is not None:
                    debug.write(np.concatenate((to_uint8(result["pt_driven"]), frames), axis=2))
                bar.update(len(frames))
                done += len(frames)
                if on_frames is not None:
                    on_frames(done, num_frames)
        return GenerationResult(out, debug_path, num_frames, motion["pose"].cpu(), motion["beta"].cpu(), prepared.notes)

    def open_stream(
        self,
        image: str | Path | PreparedPortrait,
        params: GenerationParams | None = None,
        on_frame: Callable[[int, np.ndarray], None] | None = None,
        audio_context: tuple[int, int] | None = None,
    ) -> StreamSession:
        """A streaming session for a portrait (a file, prepared once, or a :class:`PreparedPortrait`): push
        16-kHz speech chunks of any length, get frame batches as soon as their audio has arrived
        (:mod:`talkinghead.pipeline.streaming`; ``audio_context`` overrides the encoders' window in frames). A
        generated pose is played as sampled, whatever ``params.centre_pose``: its mean needs the whole speech."""
        params = params or GenerationParams()
        params.check(stream=True)
        prepared = image if isinstance(image, PreparedPortrait) else self.prepare_file(image, params.face_index)
        return StreamSession(self, prepared, params, on_frame, audio_context)

    def stream(
        self,
        image: str | Path | PreparedPortrait,
        chunks: Iterable[np.ndarray],
        params: GenerationParams | None = None,
        on_frame: Callable[[int, np.ndarray], None] | None = None,
    ) -> Iterator[np.ndarray]:
        """Frame batches (uint8 (N, 256, 256, 3)) of a speech stream given as chunks; see :meth:`open_stream`."""
        yield from stream_frames(self.open_stream(image, params, on_frame), chunks)
