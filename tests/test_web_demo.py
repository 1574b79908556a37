"""``talkinghead-demo`` served in-process on 127.0.0.1: the ``/generate`` API through gradio_client, the page in a
real headless browser (Debian's Chromium driven by Playwright), and bad input shown as its one-line message.

The checkpoints are the session fixture ``tiny_checkpoints`` (conftest): the ``*_tiny.yaml`` networks with random
weights, stand-ins that check the demo's contracts (frame count, duration, errors), not the video's quality. The
speech is :func:`tests.helpers.speech_like`, 0.7 s: ``T = ⌊25 · 0.7⌋ = 17`` frames, 0.68 s of video; the streaming
tab's tests use 1.2 s (``T = 30``: one segment of 24 frames and the rest).
"""

import importlib.util
import math
import os
import re
import shutil
import socket
from pathlib import Path
from urllib.parse import urljoin

import av
import httpx
import numpy as np
import pytest
import skimage.data
import soundfile as sf
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from talkinghead.media import SEGMENT_FRAMES, write_segment
from talkinghead.pipeline import TalkingHeadPipeline
from talkinghead.pipeline.demo_examples import example_inputs
from talkinghead.pipeline.web_demo import main as demo_main
from talkinghead.pipeline.web_page import build_demo
from tests.helpers import speech_like

SECONDS = 0.7
FRAMES = math.floor(25 * SECONDS)
STREAM_SECONDS = 1.2
STREAM_FRAMES = math.floor(25 * STREAM_SECONDS)
#: Mean absolute difference per frame between the streamed and the offline video, both H.264 at CRF 18 (the
#: streamed frames are those of the offline path, test_streaming.py; the rest is the two encodings).
CODEC_TOLERANCE = 3 / 255
CHROMIUM = Path("/usr/bin/chromium")
#: Gradio's streamed video output runs FFmpeg's command-line tools.
needs_ffmpeg = pytest.mark.skipif(
    not (shutil.which("ffmpeg") and shutil.which("ffprobe")), reason="needs ffmpeg and ffprobe (make system-deps)"
)
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
    sf.write(folder / "speech_long.wav", speech_like(STREAM_SECONDS), 16000)
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
    demo = build_demo(pipeline, examples=(inputs["portrait"], inputs["speech"]))
    for attempt in range(3):  # another process may take the free port between the probe and the launch
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        try:
            demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
            break
        except OSError:
            if attempt == 2:
                raise
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, launched once for the module's browser tests (autoplay allowed: the streaming
    tab's player starts on its own)."""
    if not CHROMIUM.is_file():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (make system-deps)")
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*CHROMIUM_FLAGS, "--autoplay-policy=no-user-gesture-required"]
        )
        yield chromium
        chromium.close()


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


def test_without_gradio_the_demo_is_one_line_naming_the_extra_and_exit_2(tiny_checkpoints, capsys, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real_find_spec(name, *a)
    )
    assert demo_main(["--checkpoints", str(tiny_checkpoints)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["talkinghead-demo: error: Gradio is not installed: pip install 'talkinghead[demo]'"]


def test_examples_are_taken_from_the_folder_that_holds_both(inputs, tmp_path):
    assert example_inputs(inputs["portrait"].parent, tmp_path / "cache") == (inputs["portrait"], inputs["speech"])
    assert not (tmp_path / "cache").exists()


def test_browser_uploads_both_files_generates_and_plays_a_video_as_long_as_the_speech(url, inputs, pipeline, browser):
    page = browser.new_page()
    try:
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
        page.close()
    assert abs(duration - SECONDS) < 0.1
    assert pipeline.reports == [(16, FRAMES), (FRAMES, FRAMES)]


def test_api_pose_from_a_file_without_the_file_is_a_one_line_message(url, inputs):
    client = Client(url, analytics_enabled=False, verbose=False)
    with pytest.raises(AppError, match=r"^pose 'from a pose file': no pose file uploaded \(\.npy, \.csv or a video\)$"):
        client.predict(handle_file(inputs["portrait"]), handle_file(inputs["speech"]), "file", api_name="/generate")


def _decoded(data: bytes, tmp_path: Path, name: str) -> tuple[list[np.ndarray], int]:
    """The RGB frames of an MPEG-TS segment (none in an audio-only one) and its number of audio streams (PyAV)."""
    path = tmp_path / name
    path.write_bytes(data)
    with av.open(str(path)) as container:
        video = (
            [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)] if container.streams.video else []
        )
        return video, len(container.streams.audio)


def test_a_segment_of_whole_aac_frames_decodes_to_exactly_its_speech(tmp_path):
    """A segment's speech decodes without the encoder's priming or end padding (PyAV honours the mp4 edit list):
    Gradio decodes each segment's speech and re-encodes it as one track, so anything extra would add up."""
    speech = np.zeros(SEGMENT_FRAMES * 640, np.float32)
    speech[4000:] = 0.5 * np.sin(2 * np.pi * 440 * np.arange(len(speech) - 4000) / 16000)
    write_segment(tmp_path / "segment.mp4", np.zeros((SEGMENT_FRAMES, 64, 64, 3), np.uint8), speech)
    with av.open(str(tmp_path / "segment.mp4")) as container:
        decoded = np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)])
    assert len(decoded) == len(speech) == 15 * 1024
    assert np.argmax(np.abs(decoded) > 0.1) - 4000 in range(0, 8)  # the tone starts where it did (± AAC ringing)


@needs_ffmpeg
def test_api_generate_stream_yields_segments_that_play_the_offline_video(url, inputs, tmp_path):
    client = Client(url, analytics_enabled=False, verbose=False, download_files=False)
    portrait, speech = handle_file(inputs["portrait"]), handle_file(inputs["speech_long"])
    outputs = list(client.submit(portrait, speech, "still", api_name="/generate_stream"))
    # The first output is the lookahead alone; segments follow, the first while the speech is still being fed
    # (its status has no report yet); the last carries the report ``talkinghead-generate --stream`` prints.
    assert outputs[0][1] == (
        "lookahead 240 ms (audio features 40 ms, facial motion 80 ms, head pose 0 ms, stage-2 batch 120 ms)"
    )
    streamed = [video for video, _ in outputs if isinstance(video, dict) and video.get("is_stream")]
    assert len(streamed) == 2 and "real-time factor" not in outputs[1][1]
    pattern = r"(\d+) frames; first frame (\d+) ms after the first audio chunk; real-time factor ([0-9.]+)"
    match = re.fullmatch(pattern, outputs[-1][1].splitlines()[-1])
    assert match and int(match[1]) == STREAM_FRAMES and float(match[2]) > 0 and float(match[3]) > 0
    # What the page's player fetches: the stream's playlist and its MPEG-TS segments, as Gradio re-muxed the two
    # yielded mp4s (then the rest of its own AAC encoder's audio in an audio-only segment). The durations are the
    # videos' own: had a segment's speech decoded longer than its frames, Gradio would move the video clock on.
    playlist_url = urljoin(url, streamed[-1]["url"])
    with httpx.Client() as http:
        playlist = http.get(playlist_url).text.splitlines()
        segments = [http.get(urljoin(playlist_url, line)).content for line in playlist if line.endswith(".ts")]
    durations = [float(line.removeprefix("#EXTINF:").rstrip(",")) for line in playlist if line.startswith("#EXTINF")]
    decoded = [_decoded(data, tmp_path, f"segment{index}.ts") for index, data in enumerate(segments)]
    assert [len(frames) for frames, _ in decoded][:2] == [SEGMENT_FRAMES, STREAM_FRAMES - SEGMENT_FRAMES] == [24, 6]
    assert sum(len(frames) for frames, _ in decoded) == STREAM_FRAMES
    assert durations[:2] == pytest.approx([0.96, 0.24], abs=1e-3)
    assert all(audio_streams == 1 for _, audio_streams in decoded)
    frames = np.stack([frame for frames, _ in decoded for frame in frames])
    offline_path = Client(url, analytics_enabled=False, verbose=False).predict(
        portrait, speech, "still", api_name="/generate"
    )
    with av.open(offline_path) as container:
        offline = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    assert frames.shape == offline.shape == (STREAM_FRAMES, 256, 256, 3)
    difference = np.abs(frames.astype(float) - offline.astype(float)).mean(axis=(1, 2, 3)) / 255
    print(f"streamed vs offline: mean absolute difference per frame ≤ {difference.max() * 255:.2f}/255")
    assert difference.max() <= CODEC_TOLERANCE


def test_api_generate_stream_shows_bad_input_as_a_one_line_message(url, inputs):
    client = Client(url, analytics_enabled=False, verbose=False)
    with pytest.raises(AppError, match=r"^no speech: upload a recording or record one with the microphone$"):
        client.predict(handle_file(inputs["portrait"]), None, api_name="/generate_stream")


def test_api_generate_stream_without_ffmpeg_is_a_one_line_message(url, inputs, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # the server runs in this process
    client = Client(url, analytics_enabled=False, verbose=False)
    message = r"^streaming needs FFmpeg's ffmpeg and ffprobe on PATH \(Debian/Ubuntu: apt-get install ffmpeg\)$"
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(inputs["portrait"]), handle_file(inputs["speech"]), api_name="/generate_stream")


@needs_ffmpeg
def test_browser_streaming_tab_plays_the_segments_while_they_come(url, inputs, browser):
    page = browser.new_page()
    try:
        page.goto(url)
        page.get_by_role("tab", name="Streaming").click()
        page.locator("#stream-portrait input[type=file]").set_input_files(inputs["portrait"])
        page.locator("#stream-speech input[type=file]").set_input_files(inputs["speech"])
        page.get_by_role("button", name="Stream").click()
        page.locator("#stream video").wait_for(timeout=120_000)
        # Gradio's HLS player appends the segments to the <video>, which plays them.
        page.wait_for_function("() => document.querySelector('#stream video').currentTime > 0.3", timeout=60_000)
        status = page.locator("#stream-status")
        status.get_by_text("real-time factor").wait_for(timeout=60_000)
        text = status.inner_text()
    finally:
        page.close()
    assert f"{FRAMES} frames; first frame" in text


def test_api_shows_bad_input_as_the_cli_one_line_message(url, inputs):
    # Last in the module: the demo keeps one fitted portrait, and the tests above reuse the astronaut's fit.
    client = Client(url, analytics_enabled=False, verbose=False)
    with pytest.raises(AppError, match=r"^image '[^\n]*/noface\.png': no face found$"):
        client.predict(handle_file(inputs["noface"]), handle_file(inputs["speech"]), api_name="/generate")
