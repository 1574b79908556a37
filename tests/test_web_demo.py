"""``talkinghead-demo`` served in-process on 127.0.0.1: the ``/generate`` API through gradio_client, the page in a
real headless browser (Debian's Chromium driven by Playwright), and bad input shown as its one-line message.

The checkpoints are the session fixture ``tiny_checkpoints`` (conftest): the ``*_tiny.yaml`` networks with random
weights, stand-ins that check the demo's contracts (frame count, duration, errors), not the video's quality. The
speech is :func:`tests.helpers.speech_like`, 0.7 s: ``T = ⌊25 · 0.7⌋ = 17`` frames, 0.68 s of video.
"""

import math
import os
import socket
from pathlib import Path

import av
import numpy as np
import pytest
import skimage.data
import soundfile as sf
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from talkinghead.pipeline import TalkingHeadPipeline
from talkinghead.pipeline.demo_examples import example_inputs
from talkinghead.pipeline.web_demo import build_demo
from talkinghead.pipeline.web_demo import main as demo_main
from tests.helpers import speech_like

SECONDS = 0.7
FRAMES = math.floor(25 * SECONDS)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("demo_inputs")
    Image.fromarray(skimage.data.astronaut()).save(folder / "portrait.png")
    sf.write(folder / "speech.wav", speech_like(SECONDS), 16000)
    Image.fromarray(np.full((256, 256, 3), 128, np.uint8)).save(folder / "noface.png")
    return {path.stem: path for path in folder.iterdir()}


class RecordingPipeline(TalkingHeadPipeline):
    """The pipeline, recording the ``on_frames(done, total)`` reports the page's progress bar is fed from."""

    reports: list[tuple[int, int]]

    def generate(self, *args, on_frames=None, **kwargs):
        def record(done: int, total: int) -> None:
            self.reports.append((done, total))
            on_frames(done, total)

        self.reports = []
        return super().generate(*args, on_frames=record, **kwargs)


@pytest.fixture(scope="module")
def pipeline(tiny_checkpoints) -> RecordingPipeline:
    return RecordingPipeline.from_checkpoints(tiny_checkpoints)


@pytest.fixture(scope="module")
def url(pipeline, inputs) -> str:
    """The page served on a free port of 127.0.0.1 for the module's tests, closed after them."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo = build_demo(pipeline, examples=(inputs["portrait"], inputs["speech"]))
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def _frames_and_seconds(path: Path) -> tuple[int, float]:
    """Decoded video frames and the video stream's duration (PyAV)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return frames, float(stream.duration * stream.time_base)


def test_api_generate_takes_portrait_and_speech_and_returns_a_video_as_long_as_the_speech(url, inputs, pipeline):
    client = Client(url, analytics_enabled=False, verbose=False)
    output = client.predict(handle_file(inputs["portrait"]), handle_file(inputs["speech"]), api_name="/generate")
    frames, seconds = _frames_and_seconds(Path(output))
    assert frames == FRAMES
    assert abs(seconds - FRAMES / 25) < 1e-3
    assert pipeline.reports == [(16, FRAMES), (FRAMES, FRAMES)]  # progress after each 16-frame batch


def test_missing_checkpoints_are_one_line_and_exit_2_before_serving(tmp_path, capsys):
    assert demo_main(["--checkpoints", str(tmp_path / "none"), "--port", "1"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("talkinghead-demo: error:") and "facial_motion.ckpt" in lines[0]


def test_examples_are_taken_from_the_folder_that_holds_both(inputs, tmp_path):
    assert example_inputs(inputs["portrait"].parent, tmp_path / "cache") == (inputs["portrait"], inputs["speech"])
    assert not (tmp_path / "cache").exists()


@pytest.mark.skipif(not CHROMIUM.is_file(), reason="needs Debian's chromium at /usr/bin/chromium (make system-deps)")
def test_browser_uploads_both_files_generates_and_plays_a_video_as_long_as_the_speech(url, inputs, pipeline):
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto(url)
            page.locator("#portrait input[type=file]").set_input_files(inputs["portrait"])
            page.locator("#speech input[type=file]").set_input_files(inputs["speech"])
            page.get_by_role("button", name="Generate").click()
            video = page.locator("#result video")
            video.wait_for(timeout=120_000)
            duration = video.evaluate(
                """video => video.readyState >= 1 ? video.duration : new Promise(resolve =>
                    video.addEventListener("loadedmetadata", () => resolve(video.duration), {once: true}))"""
            )
        finally:
            browser.close()
    assert abs(duration - SECONDS) < 0.1
    assert pipeline.reports == [(16, FRAMES), (FRAMES, FRAMES)]


def test_api_pose_from_a_file_without_the_file_is_a_one_line_message(url, inputs):
    client = Client(url, analytics_enabled=False, verbose=False)
    with pytest.raises(AppError, match=r"^pose 'from a pose file': no pose file uploaded \(\.npy, \.csv or a video\)$"):
        client.predict(handle_file(inputs["portrait"]), handle_file(inputs["speech"]), "file", api_name="/generate")


def test_api_shows_bad_input_as_the_cli_one_line_message(url, inputs):
    # Last in the module: the demo keeps one fitted portrait, and the tests above reuse the astronaut's fit.
    client = Client(url, analytics_enabled=False, verbose=False)
    with pytest.raises(AppError, match=r"^image '[^\n]*/noface\.png': no face found$"):
        client.predict(handle_file(inputs["noface"]), handle_file(inputs["speech"]), api_name="/generate")
