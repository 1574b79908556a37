"""The web page of ``talkinghead-demo`` (Gradio; the command line is :mod:`talkinghead.pipeline.web_demo`): it
makes a talking-head video of a portrait and a speech recording.

The page has one tab per way of generating; :func:`build_demo` lays them out. :func:`add_video_tab` adds the
first: portrait (upload or webcam) + speech (upload or microphone) → an mp4, with the head-pose mode (generated
with a seed, still, or from a pose file), the expression scale and full-frame paste-back of
``talkinghead-generate``, a progress bar over the rendered frames, and the bundled portrait and speech as examples
(:mod:`talkinghead.pipeline.demo_examples`). :func:`add_streaming_tab` adds the second, with the same inputs: the
video plays while it is made (:class:`StreamGenerator`, ``talkinghead-generate --stream``'s stream session), with
the stream's lookahead and, at the end, its first-frame delay and real-time factor. Bad input is shown in the
page as the one-line message ``talkinghead-generate`` prints.

HTTP API: the tabs' events are the endpoints ``/generate`` and ``/generate_stream``; their first two inputs are
the portrait image and the speech audio, the others have defaults, so ``gradio_client.Client(url).predict(
handle_file(image), handle_file(speech), api_name="/generate")`` returns the path of the downloaded video, and
``submit(..., api_name="/generate_stream")`` a job whose outputs are the stream's HLS playlist (growing) and the
status text.

Gradio's telemetry and version check are switched off (``GRADIO_ANALYTICS_ENABLED=False``); the server listens on
127.0.0.1 unless ``--host`` says otherwise, and makes a public share link only with ``--share``.
"""

import hashlib
import itertools
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import numpy as np

from talkinghead.audio.io import AudioError, load_audio
from talkinghead.conventions import FRAME_SAMPLES, SAMPLE_RATE, VIDEO_SUFFIXES
from talkinghead.media import SEGMENT_FRAMES, VideoError, write_segment
from talkinghead.pipeline.inputs import GenerationInputError
from talkinghead.pipeline.pipeline import GenerationParams, TalkingHeadPipeline
from talkinghead.pipeline.streaming import CHUNK_MS, Latency, StreamReport, live_chunks

POSE_MODES = (("generated (seeded)", "generated"), ("still", "still"), ("from a pose file", "file"))
#: What Gradio's streamed video output runs to join the segments (``gradio.components.video``).
FFMPEG_TOOLS = ("ffmpeg", "ffprobe")


class PortraitFolder:
    """Uploaded portraits kept under a path named by their content, shared by the tabs: the pipeline fits a
    portrait once per path and modification time, so a photo uploaded again (a new upload path each time), or
    used in the other tab, is not fitted again. Only the latest portrait is kept."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="talkinghead-demo-portrait-")
        self.root = Path(self._folder.name)

    def path_of(self, image: str) -> Path:
        """``<content hash>/<file name>``, copied there once."""
        source = Path(image)
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
        target = self.root / digest / source.name
        if not target.is_file():
            for old in self.root.iterdir():
                shutil.rmtree(old)
            target.parent.mkdir()
            shutil.copyfile(source, target)
        return target


def generation_params(
    image: str | None,
    audio: str | None,
    pose_mode: str,
    seed: float,
    pose_file: str | None,
    expression_scale: float | None,
    full_frame: bool,
) -> GenerationParams:
    """The tabs' shared inputs → :class:`GenerationParams`; a missing input → ``gr.Error``."""
    if not image:
        raise gr.Error("no portrait: upload a photo or take one with the webcam")
    if not audio:
        raise gr.Error("no speech: upload a recording or record one with the microphone")
    if pose_mode == "file" and not pose_file:
        raise gr.Error("pose 'from a pose file': no pose file uploaded (.npy, .csv or a video)")
    return GenerationParams(
        pose=pose_file if pose_mode == "file" else pose_mode,
        seed=int(seed),
        expression_scale=None if expression_scale is None else float(expression_scale),
        full_frame=bool(full_frame),
    )


class OutputFolder:
    """A private temporary folder for one tab's results; each request first deletes the previous one's (Gradio
    has copied or read them by then)."""

    def __init__(self, prefix: str) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix=prefix)
        self.root = Path(self._folder.name)

    def cleared(self) -> Path:
        for old in self.root.iterdir():
            old.unlink()
        return self.root


class VideoGenerator:
    """The video tab's handler: one request → one mp4 in a private temporary folder."""

    def __init__(self, pipeline: TalkingHeadPipeline, portraits: PortraitFolder | None = None):
        self.pipeline = pipeline
        self.portraits = portraits or PortraitFolder()
        self._videos = OutputFolder("talkinghead-demo-video-")

    def generate(
        self,
        image: str | None,
        audio: str | None,
        pose_mode: str = "generated",
        seed: float = 0,
        pose_file: str | None = None,
        expression_scale: float | None = None,
        full_frame: bool = False,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (gradio injects the tracker through this default)
    ) -> str:
        """Portrait path + speech path (+ options) → the path of the generated mp4; bad input → ``gr.Error``."""
        params = generation_params(image, audio, pose_mode, seed, pose_file, expression_scale, full_frame)
        videos = self._videos.cleared()
        progress(0, desc="fitting the portrait and predicting the motion")
        try:
            result = self.pipeline.generate(
                self.portraits.path_of(image),
                audio,
                videos / "talkinghead.mp4",
                params,
                progress=False,
                on_frames=lambda done, total: progress((done, total), desc="rendering", unit="frames"),
            )
        except (GenerationInputError, AudioError, VideoError) as error:
            raise gr.Error(str(error), print_exception=False) from None
        for note in result.notes:
            gr.Info(note)
        return str(result.video)


def lookahead_line(latency: Latency) -> str:
    """:attr:`StreamSession.latency` in one line."""
    return (
        f"lookahead {latency.total:.0f} ms (audio features {latency.audio_features:.0f} ms, "
        f"facial motion {latency.facial_motion:.0f} ms, head pose {latency.head_pose:.0f} ms, "
        f"stage-2 batch {latency.stage2_batch:.0f} ms)"
    )


class StreamGenerator:
    """The streaming tab's handler, a generator: the speech is pushed to a stream session as if it were live, in
    :data:`~talkinghead.pipeline.streaming.CHUNK_MS` chunks (:func:`~talkinghead.pipeline.streaming.live_chunks`;
    not paced: the file is there whole), and every
    :data:`~talkinghead.media.SEGMENT_FRAMES` frames made (0.96 s; the rest at the end) are written as an mp4
    segment with their slice of the speech (:func:`~talkinghead.media.write_segment`) and yielded. Gradio
    re-muxes each into an MPEG-TS segment of one HLS stream (it needs FFmpeg's ``ffmpeg`` and ``ffprobe``) that
    the page plays as they come. Each yield also gives the status text: the stream's lookahead, and at the end
    what ``talkinghead-generate --stream`` prints (first-frame delay, real-time factor; processing excludes the
    time Gradio takes per segment)."""

    def __init__(self, pipeline: TalkingHeadPipeline, portraits: PortraitFolder | None = None):
        self.pipeline = pipeline
        self.portraits = portraits or PortraitFolder()
        self._segments = OutputFolder("talkinghead-demo-stream-")

    def generate(
        self,
        image: str | None,
        audio: str | None,
        pose_mode: str = "generated",
        seed: float = 0,
        pose_file: str | None = None,
        expression_scale: float | None = None,
        full_frame: bool = False,
    ) -> Iterator[tuple[str | object, str]]:
        """Portrait path + speech path (+ options) → (segment path, status) as the video is made; bad input →
        ``gr.Error``."""
        params = generation_params(image, audio, pose_mode, seed, pose_file, expression_scale, full_frame)
        missing = [name for name in FFMPEG_TOOLS if shutil.which(name) is None]
        if missing:
            raise gr.Error(
                f"streaming needs FFmpeg's {' and '.join(missing)} on PATH (Debian/Ubuntu: apt-get install ffmpeg)",
                print_exception=False,
            )
        segments = self._segments.cleared()
        try:
            speech = load_audio(audio)
            session = self.pipeline.open_stream(self.portraits.path_of(image), params)
        except (GenerationInputError, AudioError, VideoError) as error:
            raise gr.Error(str(error), print_exception=False) from None
        for note in session.prepared.notes:
            gr.Info(note)
        lookahead = lookahead_line(session.latency)
        yield gr.skip(), lookahead
        pending: list[np.ndarray] = []  # frames made, not yet in a segment
        written, first_frame, busy = 0, None, 0.0
        start = time.perf_counter()
        for samples in itertools.chain(live_chunks(speech, CHUNK_MS), [None]):
            began = time.perf_counter()
            batches = session.close() if samples is None else session.push(samples)
            if batches and first_frame is None:
                first_frame = time.perf_counter() - start
            pending += [frame for frames in batches for frame in frames]
            paths = []
            while len(pending) >= SEGMENT_FRAMES or (samples is None and pending):
                frames, pending = np.stack(pending[:SEGMENT_FRAMES]), pending[SEGMENT_FRAMES:]
                end = None if samples is None and not pending else (written + len(frames)) * FRAME_SAMPLES
                paths.append(segments / f"from_frame{written:06d}.mp4")
                write_segment(paths[-1], frames, speech[written * FRAME_SAMPLES : end])  # the last: all the rest
                written += len(frames)
            busy += time.perf_counter() - began
            status = lookahead
            if samples is None:
                report = StreamReport(written, 1000 * (first_frame or math.nan), busy, len(speech) / SAMPLE_RATE)
                status = f"{lookahead}\n\n{written} frames; {report.line()}"
            for path in paths:
                yield str(path), status if path == paths[-1] else lookahead
            if samples is None and not paths:
                yield gr.skip(), status


def add_inputs(prefix: str, expression_scale: float = 1.0) -> tuple[gr.components.Component, ...]:
    """Inside a tab's column: the inputs both tabs share (portrait, speech, pose mode, seed, pose file, expression
    scale starting at ``expression_scale``, full frame), the seed or pose file shown as the pose mode needs;
    element ids ``<prefix>portrait`` and ``<prefix>speech``."""
    image = gr.Image(
        label="portrait", sources=["upload", "webcam"], type="filepath", image_mode=None, elem_id=f"{prefix}portrait"
    )
    audio = gr.Audio(label="speech", sources=["upload", "microphone"], type="filepath", elem_id=f"{prefix}speech")
    pose_mode = gr.Radio(list(POSE_MODES), value="generated", label="head pose")
    seed = gr.Number(value=0, precision=0, label="seed of the generated pose")
    pose_file = gr.File(
        label="pose file: (T, 6) .npy/.csv (pitch, yaw, roll rad; tx, ty, tz cm) or a talking-head video",
        file_types=[".npy", ".csv", *VIDEO_SUFFIXES],
        type="filepath",
        visible=False,
    )
    expression_scale = gr.Slider(
        0.0, max(3.0, 1.5 * expression_scale), value=expression_scale, step=0.05, label="expression scale"
    )
    full_frame = gr.Checkbox(value=False, label="full frame (paste the face back into the photo)")
    pose_mode.change(
        lambda mode: (gr.update(visible=mode == "generated"), gr.update(visible=mode == "file")),
        inputs=pose_mode,
        outputs=[seed, pose_file],
        api_visibility="private",
    )
    return image, audio, pose_mode, seed, pose_file, expression_scale, full_frame


def add_video_tab(
    pipeline: TalkingHeadPipeline, examples: tuple[Path, Path] | None, portraits: PortraitFolder | None = None
) -> VideoGenerator:
    """Inside a ``gr.Blocks``: the portrait + speech → video tab and its ``/generate`` endpoint."""
    generator = VideoGenerator(pipeline, portraits)
    with gr.Tab("Video", id="video"):
        with gr.Row():
            with gr.Column():
                inputs = add_inputs("", pipeline.facial_motion.expression_scale)
                button = gr.Button("Generate", variant="primary")
            with gr.Column():
                video = gr.Video(label="talking head", format=None, elem_id="result")
        if examples is not None:
            gr.Examples([[str(path) for path in examples]], inputs=inputs[:2], label="bundled portrait and speech")
        button.click(
            generator.generate,
            inputs=list(inputs),
            outputs=video,
            api_name="generate",
            concurrency_limit=1,  # one pipeline, one request at a time (shared with the streaming tab)
            concurrency_id="pipeline",
        )
    return generator


def add_streaming_tab(
    pipeline: TalkingHeadPipeline, examples: tuple[Path, Path] | None, portraits: PortraitFolder | None = None
) -> StreamGenerator:
    """Inside a ``gr.Blocks``: the tab that plays the video while it is made (:class:`StreamGenerator`) and its
    ``/generate_stream`` endpoint."""
    generator = StreamGenerator(pipeline, portraits)
    with gr.Tab("Streaming", id="streaming"):
        with gr.Row():
            with gr.Column():
                inputs = add_inputs("stream-", pipeline.facial_motion.expression_scale)
                button = gr.Button("Stream", variant="primary")
            with gr.Column():
                video = gr.Video(label="talking head (streamed)", streaming=True, autoplay=True, elem_id="stream")
                status = gr.Markdown(elem_id="stream-status")
        if examples is not None:
            gr.Examples([[str(path) for path in examples]], inputs=inputs[:2], label="bundled portrait and speech")
        button.click(
            generator.generate,
            inputs=list(inputs),
            outputs=[video, status],
            api_name="generate_stream",
            concurrency_limit=1,
            concurrency_id="pipeline",
        )
    return generator


def build_demo(pipeline: TalkingHeadPipeline, examples: tuple[Path, Path] | None = None) -> gr.Blocks:
    """The page: a title and one tab per way of generating (:func:`add_video_tab`, :func:`add_streaming_tab`)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # gradio reads it whenever it would send telemetry
    with gr.Blocks(title="talkinghead", analytics_enabled=False, delete_cache=(3600, 86400)) as demo:
        gr.Markdown("# talkinghead\nOne portrait and a speech recording → a lip-synced talking-head video.")
        with gr.Tabs():
            portraits = PortraitFolder()
            add_video_tab(pipeline, examples, portraits)
            add_streaming_tab(pipeline, examples, portraits)
    return demo
