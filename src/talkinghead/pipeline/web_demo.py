"""``talkinghead-demo``: a web page (Gradio) that makes a talking-head video of a portrait and a speech recording.

The page has one tab per way of generating; :func:`build_demo` lays them out and :func:`add_video_tab` adds the
first: portrait (upload or webcam) + speech (upload or microphone) → an mp4, with the head-pose mode (generated
with a seed, still, or from a pose file), the expression scale and full-frame paste-back of
``talkinghead-generate``, a progress bar over the rendered frames, and the bundled portrait and speech as examples
(:mod:`talkinghead.pipeline.demo_examples`). Bad input is shown in the page as the one-line message
``talkinghead-generate`` prints.

HTTP API: the tab's event is the endpoint ``/generate``; its first two inputs are the portrait image and the speech
audio, the others have defaults, so ``gradio_client.Client(url).predict(handle_file(image), handle_file(speech),
api_name="/generate")`` returns the path of the downloaded video.

Gradio's telemetry and version check are switched off (``GRADIO_ANALYTICS_ENABLED=False``); the server listens on
127.0.0.1 unless ``--host`` says otherwise, and makes a public share link only with ``--share``.
"""

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import gradio as gr

from talkinghead.audio.io import AudioError
from talkinghead.cli_conventions import add_common_arguments, configure_logging, verbosity
from talkinghead.conventions import VIDEO_SUFFIXES
from talkinghead.media import VideoError
from talkinghead.pipeline.cli import DEFAULT_CHECKPOINTS
from talkinghead.pipeline.demo_examples import ExampleInputsError, example_inputs
from talkinghead.pipeline.inputs import GenerationInputError
from talkinghead.pipeline.pipeline import GenerationParams, TalkingHeadPipeline

DEFAULT_EXAMPLES = "outputs/demo"
POSE_MODES = (("generated (seeded)", "generated"), ("still", "still"), ("from a pose file", "file"))


class VideoGenerator:
    """The video tab's handler: one request → one mp4 in a private temporary folder.

    Gradio copies the result into its own cache when the handler returns, so each request first deletes the
    previous one's video. The portrait is kept under a path named by its content: the pipeline fits a portrait once
    per path and modification time, so a photo uploaded again (a new upload path each time) is not fitted again.
    """

    def __init__(self, pipeline: TalkingHeadPipeline):
        self.pipeline = pipeline
        self._folder = tempfile.TemporaryDirectory(prefix="talkinghead-demo-")
        self._portraits = Path(self._folder.name) / "portrait"
        self._videos = Path(self._folder.name) / "video"
        self._videos.mkdir()

    def _portrait_by_content(self, image: str) -> Path:
        """``portrait/<content hash>/<file name>``, copied there once (only the latest portrait is kept)."""
        source = Path(image)
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
        target = self._portraits / digest / source.name
        if not target.is_file():
            shutil.rmtree(self._portraits, ignore_errors=True)
            target.parent.mkdir(parents=True)
            shutil.copyfile(source, target)
        return target

    def generate(
        self,
        image: str | None,
        audio: str | None,
        pose_mode: str = "generated",
        seed: float = 0,
        pose_file: str | None = None,
        expression_scale: float = 1.0,
        full_frame: bool = False,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (gradio injects the tracker through this default)
    ) -> str:
        """Portrait path + speech path (+ options) → the path of the generated mp4; bad input → ``gr.Error``."""
        if not image:
            raise gr.Error("no portrait: upload a photo or take one with the webcam")
        if not audio:
            raise gr.Error("no speech: upload a recording or record one with the microphone")
        if pose_mode == "file" and not pose_file:
            raise gr.Error("pose 'from a pose file': no pose file uploaded (.npy, .csv or a video)")
        params = GenerationParams(
            pose=pose_file if pose_mode == "file" else pose_mode,
            seed=int(seed),
            expression_scale=float(expression_scale),
            full_frame=bool(full_frame),
        )
        for old in self._videos.iterdir():
            old.unlink()
        progress(0, desc="fitting the portrait and predicting the motion")
        try:
            result = self.pipeline.generate(
                self._portrait_by_content(image),
                audio,
                self._videos / "talkinghead.mp4",
                params,
                progress=False,
                on_frames=lambda done, total: progress((done, total), desc="rendering", unit="frames"),
            )
        except (GenerationInputError, AudioError, VideoError) as error:
            raise gr.Error(str(error), print_exception=False) from None
        for note in result.notes:
            gr.Info(note)
        return str(result.video)


def add_video_tab(pipeline: TalkingHeadPipeline, examples: tuple[Path, Path] | None) -> VideoGenerator:
    """Inside a ``gr.Blocks``: the portrait + speech → video tab and its ``/generate`` endpoint."""
    generator = VideoGenerator(pipeline)
    with gr.Tab("Video", id="video"):
        with gr.Row():
            with gr.Column():
                image = gr.Image(
                    label="portrait", sources=["upload", "webcam"], type="filepath", image_mode=None, elem_id="portrait"
                )
                audio = gr.Audio(label="speech", sources=["upload", "microphone"], type="filepath", elem_id="speech")
                pose_mode = gr.Radio(list(POSE_MODES), value="generated", label="head pose")
                seed = gr.Number(value=0, precision=0, label="seed of the generated pose")
                pose_file = gr.File(
                    label="pose file: (T, 6) .npy/.csv (pitch, yaw, roll rad; tx, ty, tz cm) or a talking-head video",
                    file_types=[".npy", ".csv", *VIDEO_SUFFIXES],
                    type="filepath",
                    visible=False,
                )
                expression_scale = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="expression scale")
                full_frame = gr.Checkbox(value=False, label="full frame (paste the face back into the photo)")
                button = gr.Button("Generate", variant="primary")
            with gr.Column():
                video = gr.Video(label="talking head", format=None, elem_id="result")
        if examples is not None:
            gr.Examples([[str(path) for path in examples]], inputs=[image, audio], label="bundled portrait and speech")
        pose_mode.change(
            lambda mode: (gr.update(visible=mode == "generated"), gr.update(visible=mode == "file")),
            inputs=pose_mode,
            outputs=[seed, pose_file],
            api_visibility="private",
        )
        button.click(
            generator.generate,
            inputs=[image, audio, pose_mode, seed, pose_file, expression_scale, full_frame],
            outputs=video,
            api_name="generate",
            concurrency_limit=1,  # one pipeline, one request at a time
        )
    return generator


def build_demo(pipeline: TalkingHeadPipeline, examples: tuple[Path, Path] | None = None) -> gr.Blocks:
    """The page: a title and one tab per way of generating (the video tab, :func:`add_video_tab`)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # gradio reads it whenever it would send telemetry
    with gr.Blocks(title="talkinghead", analytics_enabled=False, delete_cache=(3600, 86400)) as demo:
        gr.Markdown("# talkinghead\nOne portrait and a speech recording → a lip-synced talking-head video.")
        with gr.Tabs():
            add_video_tab(pipeline, examples)
    return demo


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="talkinghead-demo",
        description="Serve a web page (and the HTTP API /generate) that makes talking-head videos.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--checkpoints",
        default=DEFAULT_CHECKPOINTS,
        help="folder with facial_motion.ckpt, pose_mapper.ckpt and motion_vae.ckpt (what `make demo` trains), "
        "an export of tools/export_weights.py or its Hugging Face Hub id",
    )
    p.add_argument(
        "--examples",
        default=DEFAULT_EXAMPLES,
        help="folder with the example portrait.png and speech.wav; written into ~/.cache/talkinghead if absent",
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the networks run")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on")
    p.add_argument("--share", action="store_true", help="also make a temporary public link through Gradio's servers")
    add_common_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(verbosity(args))
    try:
        if args.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise GenerationInputError("--device cuda: CUDA is not available on this machine")
        pipeline = TalkingHeadPipeline.load(args.checkpoints, device=args.device)
    except GenerationInputError as error:
        print(f"talkinghead-demo: error: {error}", file=sys.stderr)
        return 2
    try:
        examples = example_inputs(args.examples)
    except ExampleInputsError as error:
        print(f"talkinghead-demo: note: no examples: {error}", file=sys.stderr)
        examples = None
    try:
        build_demo(pipeline, examples).launch(server_name=args.host, server_port=args.port, share=args.share)
    except OSError as error:
        print(f"talkinghead-demo: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
