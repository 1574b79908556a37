"""Streaming generation: speech arrives in chunks of any length, frames leave as soon as the audio they depend on
has arrived (:meth:`TalkingHeadPipeline.open_stream` / :meth:`~TalkingHeadPipeline.stream`).

The portrait is prepared once; then every :meth:`StreamSession.push` of 16-kHz samples runs each stage on what it
can finish, and :meth:`StreamSession.close` (end of speech) flushes the rest. The video equals
:meth:`TalkingHeadPipeline.generate`'s with ``centre_pose=False``, ``T = ⌊25 · seconds⌋`` frames, because each
stage waits for exactly the context its offline counterpart uses (a generated head pose is played as sampled:
centring it on the portrait's pose needs its mean over the whole speech):

* the speech's colour and level (:mod:`talkinghead.audio.equalizer`, :mod:`talkinghead.audio.level`): a causal
  equaliser and gain control per 40-ms frame, the same computations offline, so they hold a frame's samples
  only until the frame is whole;
* audio features (:mod:`talkinghead.audio.encoders`): the encoder runs on a sliding window with its
  ``stream_context`` (left, right) frames around the new frames; the log-mel features are exact with one frame
  (40 ms) each side. wav2vec 2.0 sees the whole utterance offline (attention and normalisation), so streaming
  can only approximate it: a 2-s left / 120-ms right window, normalised over itself (measured difference in
  docs/PERFORMANCE.md);
* facial motion (Eq. 2–3, :class:`~talkinghead.models.facial_motion.FacialMotionGenerator`): the audio
  projection's conv (radius r frames) and the cross-attention window (w_future frames) are the lookahead; the
  decoder steps with its key/value cache as offline, the audio memory trimmed to the alignment window;
* head pose (Eq. 7–8): the mapper pools the features to code steps of f frames, then the same conv radius and
  window in code steps; its codes are sampled in the offline order (same seed, same codes) and the frozen
  VQ-VAE decoder emits a frame once no later code can change it
  (:class:`~talkinghead.models.pose_vqvae.StreamingPoseDecoder`: about one decoder window, ``max_context``
  frames, of delay; a causal decoder, :class:`~talkinghead.models.pose_vqvae.CausalStreamingPoseDecoder`: one
  code step, none with ``causal_upsampling``). ``pose="still"`` and pose files add no delay;
* stage 2 (:meth:`~talkinghead.models.mesh_to_video.MeshToVideo.drive`): the ready frames in batches of at
  most ``batch_size`` (networks with GroupNorm: a frame does not depend on its batch); the portrait is parsed
  and its reference mesh rendered once per session (:meth:`~talkinghead.models.mesh_to_video.MeshToVideo.
  prepare_reference`).

:attr:`StreamSession.latency` states the lookahead each stage adds, in ms. At the ends of the utterance the
networks see zero padding offline; the streaming path reproduces it at :meth:`~StreamSession.close`, which is why
a frame is only final once the frames of its lookahead have arrived whole (they also prove it is not the last).

Memory is bounded for an endless stream: the audio buffer keeps the encoders' left context, the feature and
memory buffers the conv radius and alignment window, the decoders' key/value caches ``max_context`` frames, the
pose decoder one window of codes and frames (:meth:`StreamSession.buffer_sizes`).
"""

import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from talkinghead.audio.encoders import AudioEncoder
from talkinghead.audio.io import num_video_frames
from talkinghead.conventions import FPS, FRAME_SAMPLES, SAMPLE_RATE
from talkinghead.image_tensors import to_uint8
from talkinghead.media import FragmentedVideoWriter
from talkinghead.models.audio_to_motion import AudioToMotion
from talkinghead.models.facial_motion import merge_blendshapes
from talkinghead.models.head_pose import HeadPoseGenerator
from talkinghead.models.pose_mapper import pool_to_codes
from talkinghead.models.pose_vqvae import streaming_decoder
from talkinghead.pipeline.heard_speech import HeardSpeech
from talkinghead.pipeline.inputs import follow, load_pose_file
from talkinghead.pipeline.paste_back import PasteBack

if TYPE_CHECKING:
    from talkinghead.pipeline.pipeline import GenerationParams, PreparedPortrait, TalkingHeadPipeline

FRAME_MS = 1000 / FPS
#: The length of the chunks :func:`live_chunks` delivers by default (``talkinghead-generate --stream``, the
#: web demo's streaming tab): one video frame's audio.
CHUNK_MS = FRAME_MS


class SampleBuffer:
    """The stream's samples from ``start`` on (absolute indices); the past is trimmed as it stops being needed."""

    def __init__(self) -> None:
        self.samples = np.zeros(0, np.float32)
        self.start = 0

    @property
    def received(self) -> int:
        return self.start + len(self.samples)

    def append(self, samples: np.ndarray) -> None:
        self.samples = np.concatenate((self.samples, samples))

    def get(self, lo: int, hi: int) -> np.ndarray:
        return self.samples[lo - self.start : hi - self.start]

    def trim(self, keep_from: int) -> None:
        drop = keep_from - self.start
        if drop > 0:
            self.samples = self.samples[drop:]
            self.start = keep_from


class FrameBuffer:
    """Rows (1, n, C) of a per-frame (or per-code-step) sequence from ``start`` on; ``end`` rows known in all."""

    def __init__(self) -> None:
        self.rows: torch.Tensor | None = None
        self.start = 0

    @property
    def end(self) -> int:
        return self.start + (0 if self.rows is None else self.rows.shape[1])

    def append(self, rows: torch.Tensor) -> None:
        self.rows = rows if self.rows is None else torch.cat((self.rows, rows), dim=1)

    def window(self, lo: int, hi: int) -> torch.Tensor:
        return self.rows[:, lo - self.start : hi - self.start]

    def trim(self, keep_from: int) -> None:
        drop = min(keep_from, self.end) - self.start
        if drop > 0:
            self.rows = self.rows[:, drop:]
            self.start += drop

    def __len__(self) -> int:
        return self.end - self.start


class FeatureStream:
    """An audio encoder over a sliding window: the features of frame t once frames ``t + right`` have arrived
    (or at the end), computed from frames ``[t − left, t + right]`` (clipped to the utterance)."""

    def __init__(self, encoder: AudioEncoder, context: tuple[int, int] | None, device: torch.device) -> None:
        self.encoder = encoder
        self.left, self.right = context or encoder.stream_context
        self.device = device
        self.features = FrameBuffer()

    def update(self, audio: SampleBuffer, frames_received: int, final_frames: int | None) -> None:
        done = self.features.end
        limit = frames_received if final_frames is None else final_frames
        ready = limit if final_frames is not None else max(0, frames_received - self.right)
        if ready <= done:
            return
        lo, hi = max(0, done - self.left), min(ready + self.right, limit)
        wave = torch.from_numpy(audio.get(lo * FRAME_SAMPLES, hi * FRAME_SAMPLES))[None].to(self.device)
        self.features.append(self.encoder(wave, hi - lo)[:, done - lo : ready - lo])

    @property
    def audio_needed_from(self) -> int:
        """The first sample a later window can read."""
        return max(0, self.features.end - self.left) * FRAME_SAMPLES


def _memory_rows(project, rows: FrameBuffer, done: int, radius: int, final: bool) -> torch.Tensor | None:
    """The next rows of a memory ``project(window)`` whose frames depend on ``radius`` input rows either side
    (the audio projection's conv): rows ``[done, end − radius)``, or all at the end; the window includes the
    radius where the sequence continues, so the conv's zero padding only acts at the true ends."""
    stop = rows.end if final else max(done, rows.end - radius)
    if stop <= done:
        return None
    lo, hi = max(0, done - radius), min(rows.end, stop + radius)
    memory = project(rows.window(lo, hi))
    return memory[:, done - lo : stop - lo]


class FacialMotionStream:
    """Stage 1a incrementally: β (n, 52) and lip offsets (n, L, 3) per pushed audio, scaled as offline."""

    def __init__(self, model: AudioToMotion, alpha: torch.Tensor, scale: float | None, context, device) -> None:
        self.model = model
        self.net = model.net
        self.alpha = alpha
        self.scale = scale
        self.features = FeatureStream(model.audio_encoder, context, device)
        self.state = self.net.start_stream(alpha)

    @property
    def lookahead_frames(self) -> int:
        return self.features.right + self.net.audio_encoder.radius + self.net.audio_window[1]

    def update(self, audio: SampleBuffer, frames_received: int, final: int | None) -> dict[str, torch.Tensor]:
        net, state = self.net, self.state
        self.features.update(audio, frames_received, final)
        memory = _memory_rows(
            lambda window: net.memory(window, self.alpha),
            self.features.features,
            state.length,
            net.audio_encoder.radius,
            final is not None,
        )
        if memory is not None:
            net.extend(state, memory)
        limit = state.length if final is not None else state.length - net.audio_window[1]
        steps = [net.step(state) for _ in range(state.position, limit)]
        net.trim(state)
        self.features.features.trim(state.length - net.audio_encoder.radius)
        if not steps:
            return {}
        out = {name: torch.cat([step[name] for step in steps], dim=1)[0] for name in steps[0]}
        beta = merge_blendshapes(out["beta_lip"], out["beta_other"])
        return self.model.scale_expression(beta, out["lip_offsets"], self.scale)

    def buffer_sizes(self) -> dict[str, int]:
        state = self.state
        return {
            "facial features": len(self.features.features),
            "facial memory": state.length - state.memory_start,
            "facial cache": len(state.cache),
        }


class GeneratedPoseStream:
    """Stage 1b incrementally: the mapper's sampled codes (offline order and seed) → the frozen decoder's poses."""

    def __init__(self, model: HeadPoseGenerator, alpha, reference_pose, params, context, device) -> None:
        self.model = model
        self.mapper = model.net
        self.f = self.mapper.downsample
        self.reference_pose = reference_pose
        self.params = params
        self.generator = torch.Generator(device=device).manual_seed(params.seed)
        self.features = FeatureStream(model.audio_encoder, context, device)
        self.pooled = FrameBuffer()
        self.state = self.mapper.start(alpha, reference_pose)
        self.decoder = streaming_decoder(model.vqvae)

    def lookahead_frames(self) -> float:
        """Worst case over a code's frames: the codes the decoder waits for after it (the rest of its window, or
        a causal decoder's convolution reach), each sampled once the memory step ``w_future`` after it (and the
        conv radius after that) has its pooled audio."""
        f, mapper = self.f, self.mapper
        steps = mapper.decoder.audio_window[1] + mapper.audio_encoder.radius + 1
        later = self.decoder.lookahead_codes
        return math.inf if later is None else (later + steps) * f - 1 + self.features.right

    def ready_after(self, frame: int) -> float:
        """Frames received before ``frame``'s pose is final: its code's first frame waits the longest."""
        return frame // self.f * self.f + self.lookahead_frames() + 1

    def update(self, audio: SampleBuffer, frames_received: int, final: int | None) -> torch.Tensor:
        f, mapper, state = self.f, self.mapper, self.state
        self.features.update(audio, frames_received, final)
        features = self.features.features
        pooled_end = -(-features.end // f) if final is not None else features.end // f
        if pooled_end > self.pooled.end:
            first = self.pooled.end * f
            self.pooled.append(pool_to_codes(features.window(first, min(pooled_end * f, features.end)), f))
        memory = _memory_rows(
            lambda window: mapper.code_memory(window, state.cond),
            self.pooled,
            state.length,
            mapper.audio_encoder.radius,
            final is not None,
        )
        if memory is not None:
            mapper.extend(state, memory)
        limit = state.length if final is not None else state.length - mapper.decoder.audio_window[1]
        codebook, params = self.model.vqvae.quantizer, self.params
        codes = [
            mapper.step(state, codebook, params.temperature, params.top_k, self.generator)[0]
            for _ in range(state.position, limit)
        ]
        mapper.trim(state)
        self.pooled.trim(state.length - mapper.audio_encoder.radius)
        features.trim(self.pooled.end * f)
        z_q = torch.stack(codes, dim=1) if codes else self.reference_pose.new_zeros(1, 0, codebook.code_dim)
        relative = self.decoder.push(z_q, frames_received if final is None else final)
        if final is not None:
            relative = torch.cat((relative, self.decoder.close(final)), dim=1)
        poses = relative if mapper.absolute_pose else self.reference_pose[:, None] + relative
        return poses[0]

    def buffer_sizes(self) -> dict[str, int]:
        state = self.state
        return {
            "pose features": len(self.features.features),
            "pose pooled": len(self.pooled),
            "pose memory": state.length - state.memory_start,
            "pose cache": len(state.cache),
            **self.decoder.buffer_sizes(),
        }


class FixedPoseStream:
    """``pose="still"`` (the portrait's pose) or a pose file's motion (played forwards and backwards, as
    :func:`~talkinghead.pipeline.inputs.follow`): frame t's pose needs only frame t to exist."""

    f = 1  # frames per pose step (a generated pose: per code)

    def __init__(self, reference_pose: torch.Tensor, relative: torch.Tensor | None) -> None:
        self.reference_pose = reference_pose[0]
        length = 1 if relative is None or len(relative) == 1 else 2 * len(relative) - 2
        self.cycle = None if relative is None else follow(relative.to(reference_pose), length)
        self.done = 0

    def ready_after(self, frame: int) -> int:
        """Frames received before ``frame``'s pose is known: the frame itself."""
        return frame + 1

    def update(self, audio: SampleBuffer, frames_received: int, final: int | None) -> torch.Tensor:
        end = frames_received if final is None else final
        frames = torch.arange(self.done, max(end, self.done), device=self.reference_pose.device)
        self.done = max(end, self.done)
        poses = self.reference_pose.expand(len(frames), -1)
        return poses if self.cycle is None else poses + self.cycle[frames % len(self.cycle)]

    def buffer_sizes(self) -> dict[str, int]:
        return {}


@dataclass
class Latency:
    """Lookahead in ms: how much later than its own audio a frame can be made, per stage and in all (the
    slowest path). Processing time and the chunk size come on top. ``stage2_batch``: how long a ready frame may
    wait for the next ones of its stage-2 batch (:class:`StreamSession`'s ``stream_batch``)."""

    audio_features: float
    facial_motion: float
    head_pose: float
    total: float
    stage2_batch: float = 0.0


class MotionStream:
    """Stage 1 of a stream: audio chunks → per-frame β, lip offsets and absolute poses, in frame order, each as
    soon as it is final (see the module docstring)."""

    def __init__(
        self,
        pipeline: "TalkingHeadPipeline",
        prepared: "PreparedPortrait",
        params: "GenerationParams",
        audio_context: tuple[int, int] | None = None,
    ) -> None:
        device = pipeline.device
        portrait = prepared.portrait
        alpha = portrait.alpha[None].to(device)
        reference_pose = portrait.pose[None].to(device)
        self.audio = SampleBuffer()
        self.heard = HeardSpeech(params)
        self.face = FacialMotionStream(pipeline.facial_motion, alpha, params.expression_scale, audio_context, device)
        if params.pose == "generated":
            self.pose = GeneratedPoseStream(pipeline.pose_mapper, alpha, reference_pose, params, audio_context, device)
        elif params.pose == "still":
            self.pose = FixedPoseStream(reference_pose, None)
        else:
            relative = load_pose_file(params.pose, pipeline.fitting_face, pipeline.camera)
            self.pose = FixedPoseStream(reference_pose, relative)
        self.pending: dict[str, list[torch.Tensor]] = {"beta": [], "lip_offsets": [], "pose": []}
        self.closed = False

    @property
    def latency(self) -> Latency:
        features = self.face.features.right * FRAME_MS
        face = self.face.lookahead_frames * FRAME_MS
        pose = self.pose.lookahead_frames() * FRAME_MS if isinstance(self.pose, GeneratedPoseStream) else 0.0
        return Latency(features, face - features, pose, max(face, pose))

    def ready_after(self, frame: int) -> float:
        """Frames received (whole, from the start) before ``frame``'s motion is final: its facial motion's
        lookahead, its pose's."""
        return max(frame + self.face.lookahead_frames + 1, self.pose.ready_after(frame))

    @torch.no_grad()
    def push(self, samples: np.ndarray) -> dict[str, torch.Tensor]:
        """Append samples; → the frames that became final (``beta``, ``lip_offsets``, ``pose``; maybe none)."""
        if self.closed:
            raise RuntimeError("the stream is closed")
        samples = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        self.audio.append(self.heard.process(samples))
        return self._update(None)

    @torch.no_grad()
    def close(self) -> dict[str, torch.Tensor]:
        """End of speech: the remaining frames of ``T = ⌊25 · seconds⌋`` (none for less than one frame of speech)."""
        self.closed = True
        self.audio.append(self.heard.flush())
        final = num_video_frames(self.audio.received)
        return self._update(final) if final > 0 else {}

    def _update(self, final: int | None) -> dict[str, torch.Tensor]:
        received = num_video_frames(self.audio.received)
        face = self.face.update(self.audio, received, final)
        poses = self.pose.update(self.audio, received, final)
        for key in ("beta", "lip_offsets"):
            if key in face:
                self.pending[key].append(face[key])
        self.pending["pose"].append(poses)
        needed = [self.face.features.audio_needed_from]
        if isinstance(self.pose, GeneratedPoseStream):
            needed.append(self.pose.features.audio_needed_from)
        self.audio.trim(min(needed))
        return self._take()

    def _take(self) -> dict[str, torch.Tensor]:
        joined = {key: torch.cat(parts) if parts else None for key, parts in self.pending.items()}
        count = min(0 if value is None else len(value) for value in joined.values())
        out = {}
        for key, value in joined.items():
            out[key] = value[:count] if value is not None else None
            self.pending[key] = [value[count:]] if value is not None and len(value) > count else []
        return out if count else {}

    def buffer_sizes(self) -> dict[str, int]:
        """Samples, rows and cached frames held now (bounded for an endless stream)."""
        pending = {key: sum(len(part) for part in parts) for key, parts in self.pending.items()}
        return {
            "audio samples": len(self.audio.samples),
            **self.face.buffer_sizes(),
            **self.pose.buffer_sizes(),
            **{f"pending {key}": value for key, value in pending.items()},
        }


class StreamSession:
    """One portrait, one stream of speech: :meth:`push` chunks, :meth:`close` at the end; both return the
    frame batches made (uint8 (N, 256, 256, 3), or the whole portrait with ``full_frame``), possibly none.
    ``on_frame(index, frame)`` is called for every frame as it is made. Made by
    :meth:`TalkingHeadPipeline.open_stream`."""

    def __init__(
        self,
        pipeline: "TalkingHeadPipeline",
        prepared: "PreparedPortrait",
        params: "GenerationParams",
        on_frame: Callable[[int, np.ndarray], None] | None = None,
        audio_context: tuple[int, int] | None = None,
    ) -> None:
        params.check(stream=True)
        self.pipeline = pipeline
        self.prepared = prepared
        self.batch_size = params.batch_size
        self.bf16 = params.bf16
        with torch.no_grad():  # the stages' start-up state (conditions, parsed reference) holds no graph
            self.motion = MotionStream(pipeline, prepared, params, audio_context)
            self.stage2 = pipeline.stage2_reference(prepared)
        self.paste = PasteBack(prepared.image, prepared.box, params.max_frame_side) if params.full_frame else None
        self.on_frame = on_frame
        self.frames_made = 0
        self.stream_batch = params.stream_batch
        self.held: dict[str, torch.Tensor] = {}

    @property
    def latency(self) -> Latency:
        """The lookahead each stage adds (ms); see :class:`Latency`. ``stage2_batch`` is what :meth:`_batch` adds
        when the audio arrives a frame at a time: frames that become ready one by one wait for up to
        ``stream_batch − 1`` more, frames that arrive in bursts (a pose decoder's code step) may wait less or
        not at all. It is found by playing :meth:`_batch`'s rule over the frames' ready times
        (:meth:`MotionStream.ready_after`), which repeat with the period ``stream_batch`` × the code step."""
        motion = self.motion.latency
        if math.isinf(motion.total):
            return motion
        horizon = 8 * self.stream_batch * self.motion.pose.f + round(motion.total / FRAME_MS) + 2
        ready_after = [self.motion.ready_after(frame) for frame in range(horizon)]
        made, late = 0, 0
        for received in range(1, horizon):
            ready = sum(1 for needed in ready_after if needed <= received)
            if ready - made >= self.stream_batch or (ready > made and made == 0):
                made = ready
            late = max(late, received - made)
        waiting = late * FRAME_MS - motion.total
        return dataclasses.replace(motion, total=motion.total + waiting, stage2_batch=waiting)

    def buffer_sizes(self) -> dict[str, int]:
        return self.motion.buffer_sizes()

    @torch.no_grad()
    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        """16-kHz mono float32 samples, any length → the frame batches that their arrival completed."""
        return self._render(self._batch(self.motion.push(samples), final=False))

    @torch.no_grad()
    def close(self) -> list[np.ndarray]:
        """End of speech → the remaining frame batches."""
        return self._render(self._batch(self.motion.close(), final=True))

    def _batch(self, motion: dict[str, torch.Tensor], final: bool) -> dict[str, torch.Tensor]:
        """The ready frames to render now: all of them once ``stream_batch`` are ready, the first frame of the
        stream at once, the rest at the end; fewer wait in ``held``. On a CPU, stage 2 costs about 1.5× less per
        frame in a batch of two than alone (docs/PERFORMANCE.md)."""
        if self.held:
            motion = {key: torch.cat((self.held[key], motion[key])) for key in self.held} if motion else self.held
        ready = len(motion["pose"]) if motion else 0
        if ready >= self.stream_batch or final or (ready and self.frames_made == 0):
            self.held = {}
            return motion
        self.held = motion
        return {}

    def _render(self, motion: dict[str, torch.Tensor]) -> list[np.ndarray]:
        if not motion:
            return []
        batches = []
        for result in self.pipeline.frames(self.prepared, motion, self.batch_size, self.stage2, self.bf16):
            frames = to_uint8(result["frame"])
            if self.paste is not None:
                frames = np.stack([self.paste(frame) for frame in frames])
            if self.on_frame is not None:
                for offset, frame in enumerate(frames):
                    self.on_frame(self.frames_made + offset, frame)
            self.frames_made += len(frames)
            batches.append(frames)
        return batches


def stream_frames(session: StreamSession, chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Push every chunk, then close: the frame batches in order."""
    for chunk in chunks:
        yield from session.push(chunk)
    yield from session.close()


@dataclass
class StreamReport:
    """What :func:`stream_to_mp4` measured: frames written, the first frame's delay after the first audio chunk
    was pushed (ms, wall clock), processing time (s, waiting for ``realtime`` pacing excluded) and the speech
    duration (s); ``real_time_factor`` = processing time / speech duration (< 1: faster than real time)."""

    num_frames: int
    first_frame_ms: float
    processing_s: float
    speech_s: float

    @property
    def real_time_factor(self) -> float:
        return self.processing_s / self.speech_s if self.speech_s > 0 else math.nan

    def line(self) -> str:
        return (
            f"first frame {self.first_frame_ms:.0f} ms after the first audio chunk; "
            f"real-time factor {self.real_time_factor:.3f}"
        )


def live_chunks(speech: np.ndarray, chunk_ms: float = CHUNK_MS, realtime: bool = False) -> Iterator[np.ndarray]:
    """``speech`` as a live source delivers it, in ``chunk_ms`` chunks; resume the generator when the previous
    chunk has been processed.

    ``realtime``: a chunk becomes available when its last sample's wall-clock time has come (the generator sleeps
    until then); when processing falls behind, every whole chunk available by then comes at once, as a live source
    delivers what it buffered (stage 2 then renders the frames they complete in one batch). Otherwise chunks come
    one at a time, as fast as they are processed."""
    chunk = max(1, round(chunk_ms * SAMPLE_RATE / 1000))
    start, offset = time.perf_counter(), 0
    while offset < len(speech):
        end = min(offset + chunk, len(speech))
        if realtime:
            time.sleep(max(0.0, start + end / SAMPLE_RATE - time.perf_counter()))
            arrived = int((time.perf_counter() - start) * SAMPLE_RATE)
            end = max(end, min(offset + (arrived - offset) // chunk * chunk, len(speech)))
        yield speech[offset:end]
        offset = end


def stream_to_mp4(
    session: StreamSession,
    speech: np.ndarray,
    out: str | Path,
    chunk_ms: float = CHUNK_MS,
    realtime: bool = False,
) -> StreamReport:
    """Feed ``speech`` to ``session`` as :func:`live_chunks` delivers it and write a fragmented mp4 that plays
    while it is written (:class:`~talkinghead.media.FragmentedVideoWriter`: at ``out`` directly, deleted on an
    error or interrupt); each chunk's audio is muxed when it is pushed."""
    first_frame, first_push, busy = None, None, 0.0
    with FragmentedVideoWriter(out, FPS, audio=True, sample_rate=SAMPLE_RATE) as writer:
        for samples in itertools.chain(live_chunks(speech, chunk_ms, realtime), [None]):
            began = time.perf_counter()
            first_push = began if first_push is None else first_push
            if samples is None:
                batches = session.close()
            else:
                writer.write_audio(samples)
                batches = session.push(samples)
            for frames in batches:
                writer.write(frames)
            if batches and first_frame is None:
                first_frame = time.perf_counter() - first_push
            busy += time.perf_counter() - began
    return StreamReport(session.frames_made, 1000 * (first_frame or math.nan), busy, len(speech) / SAMPLE_RATE)
