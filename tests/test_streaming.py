"""Streaming generation (``TalkingHeadPipeline.open_stream`` / ``stream``, ``talkinghead-generate --stream``) on
tiny stand-in networks: the ``tiny_checkpoints`` fixture (the ``*_tiny.yaml`` model arguments, random weights)
and, for wav2vec 2.0, a small random stand-in (``helpers.save_wav2vec2_standin``).

What is checked: streamed motion equals the offline ``pipeline.motion`` for chunk sizes that do not divide the
640-sample frame hop; streamed frames equal the offline frames (mean absolute difference ≤ 2/255 per frame), in
float32 and with stage 2 in bfloat16;
frames leave exactly ``latency`` after their audio; buffers stop growing; the CLI's fragmented mp4 matches
the offline video.
"""

import re
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import soundfile as sf
import torch
from PIL import Image

from talkinghead.audio.io import num_video_frames
from talkinghead.audio.spectrum import CORPUS_SPECTRUM_DB
from talkinghead.conventions import FRAME_SAMPLES
from talkinghead.image_tensors import to_uint8
from talkinghead.media import iter_video_frames, probe_video
from talkinghead.models import AudioToMotion
from talkinghead.pipeline import GenerationParams, TalkingHeadPipeline, streaming
from talkinghead.pipeline.cli import main as generate_main
from talkinghead.pipeline.streaming import MotionStream, stream_to_mp4
from tests.helpers import save_wav2vec2_standin, speech_like, tiny_init_args

SECONDS = 3.3  # 82 frames: more than one pose-decoder window (48 frames), so its band moves along
FRAME_TOLERANCE = 2 / 255


@pytest.fixture(scope="module")
def pipeline(tiny_checkpoints) -> TalkingHeadPipeline:
    return TalkingHeadPipeline.from_checkpoints(tiny_checkpoints)


@pytest.fixture(scope="module")
def prepared(pipeline):
    return pipeline.prepare(skimage.data.astronaut())


def chunks(audio: np.ndarray, size: int) -> list[np.ndarray]:
    return [audio[start : start + size] for start in range(0, len(audio), size)]


def streamed_motion(pipeline, prepared, audio, params, size, audio_context=None) -> dict[str, torch.Tensor]:
    stream = MotionStream(pipeline, prepared, params, audio_context)
    with torch.no_grad():
        parts = [stream.push(chunk) for chunk in chunks(audio, size)] + [stream.close()]
    return {key: torch.cat([part[key] for part in parts if part]) for key in ("beta", "lip_offsets", "pose")}


@pytest.mark.parametrize(
    ("pose", "size"), [("still", 333), ("generated", 333), ("generated", 1000), ("generated", 3517)]
)
def test_streamed_motion_equals_offline_motion_for_any_chunk_size(pipeline, prepared, pose, size):
    audio = speech_like(SECONDS, seed=1)
    params = GenerationParams(pose=pose, seed=3, centre_pose=False)  # a stream plays the pose as sampled
    offline = pipeline.motion(prepared, audio, params)
    streamed = streamed_motion(pipeline, prepared, audio, params, size)
    assert len(streamed["pose"]) == num_video_frames(len(audio)) == 82
    for key, value in offline.items():
        torch.testing.assert_close(streamed[key], value, atol=1e-5, rtol=0, msg=key)  # float rounding only


def test_an_equalized_stream_equals_the_offline_equalized_motion(pipeline, prepared):
    """With the speech equaliser on, 333-sample chunks give the offline motion to float rounding, and the
    equaliser acts (the motion differs from the unequalised speech's)."""
    audio = speech_like(SECONDS, seed=1)
    params = GenerationParams(pose="generated", seed=3, centre_pose=False, speech_spectrum_db=CORPUS_SPECTRUM_DB)
    offline = pipeline.motion(prepared, audio, params)
    streamed = streamed_motion(pipeline, prepared, audio, params, 333)
    for key, value in offline.items():
        torch.testing.assert_close(streamed[key], value, atol=1e-5, rtol=0, msg=key)
    plain = pipeline.motion(prepared, audio, GenerationParams(pose="generated", seed=3, centre_pose=False))
    assert (plain["beta"] - offline["beta"]).abs().max() > 1e-3


@pytest.mark.parametrize("bf16", [False, True])
def test_streamed_frames_match_the_offline_frames(pipeline, prepared, bf16):
    audio = speech_like(1.2, seed=2)  # 30 frames (longer streams of the pose decoder: the motion tests above)
    params = GenerationParams(pose="generated", seed=5, centre_pose=False, batch_size=16, bf16=bf16)
    motion = pipeline.motion(prepared, audio, params)
    offline = np.concatenate([to_uint8(out["frame"]) for out in pipeline.frames(prepared, motion, 16, bf16=bf16)])
    calls = []
    batches = list(pipeline.stream(prepared, chunks(audio, 3517), params, on_frame=lambda i, f: calls.append(i)))
    streamed = np.concatenate(batches)
    assert streamed.shape == offline.shape == (30, 256, 256, 3)
    difference = np.abs(streamed.astype(float) - offline.astype(float)).mean(axis=(1, 2, 3)) / 255
    assert difference.max() <= FRAME_TOLERANCE
    assert calls == list(range(30))


def test_bf16_stage2_differs_from_float32_by_rounding_only(pipeline, prepared):
    """``GenerationParams.bf16``: the motion-VAE and generator run in bfloat16 — the frames are not float32's
    (so the networks did run in bfloat16), but within 1/255 of them on average per frame (bfloat16 keeps 8
    significant bits; the input rendering and the final blend stay float32)."""
    audio = speech_like(0.8, seed=7)  # 20 frames
    motion = pipeline.motion(prepared, audio, GenerationParams(pose="still"))
    frames = {
        bf16: torch.cat([out["frame"] for out in pipeline.frames(prepared, motion, 8, bf16=bf16)])
        for bf16 in (False, True)
    }
    assert frames[True].dtype == frames[False].dtype == torch.float32
    difference = (frames[True] - frames[False]).abs().mean(dim=(1, 2, 3))
    assert difference.min() > 0
    assert difference.max() <= 1 / 255


def test_frames_leave_as_soon_as_their_lookahead_has_arrived(pipeline, prepared):
    audio = speech_like(SECONDS, seed=3)
    for pose in ("still", "generated"):
        stream = MotionStream(pipeline, prepared, GenerationParams(pose=pose))
        lookahead = round(stream.latency.total * 25 / 1000)
        emitted, late = 0, []
        with torch.no_grad():
            for chunk in chunks(audio, FRAME_SAMPLES):
                out = stream.push(chunk)
                emitted += len(out["pose"]) if out else 0
                received = stream.audio.received // FRAME_SAMPLES
                late.append(received - emitted)
            emitted += len(stream.close()["pose"])
        assert emitted == 82
        assert max(late) == lookahead  # never later than stated, and the statement is tight
        if pose == "still":  # 40 ms mel context + 1 frame conv radius + 1 frame cross-attention lookahead
            assert stream.latency.total == 120 and late[lookahead:] == [lookahead] * (len(late) - lookahead)
        else:  # the mapper waits for its code step's audio (4 frames) + the mel context; the decoder for nothing
            assert stream.latency.head_pose == 160 and stream.latency.total == 160


@pytest.mark.parametrize("stream_batch", [1, 3])
def test_stage2_renders_the_first_frame_at_once_then_batches_of_stream_batch(pipeline, prepared, stream_batch):
    """Still pose, 40-ms chunks (one frame ready per chunk after the lookahead): the first frame leaves alone, the
    next ones in batches of exactly ``stream_batch``, the rest at ``close``; no frame is later than the stated
    lookahead, which counts the batch's wait, and the statement is tight."""
    audio = speech_like(1.2, seed=6)  # 30 frames
    session = pipeline.open_stream(prepared, GenerationParams(pose="still", stream_batch=stream_batch))
    lookahead = round(session.latency.total * 25 / 1000)
    assert session.latency.stage2_batch == 40 * (stream_batch - 1)
    assert lookahead == 3 + stream_batch - 1  # 120 ms of stage-1 lookahead, then the batch
    sizes, late = frames_late(session, audio)
    assert session.frames_made == sum(sizes) == 30
    assert sizes[0] == 1 and set(sizes[1:-1]) <= {stream_batch}
    assert max(late) == lookahead


@pytest.mark.parametrize("stream_batch", [1, 2, 5])
def test_generated_pose_frames_are_never_later_than_the_stated_lookahead(pipeline, prepared, stream_batch):
    """Generated poses come a code step (4 frames) at a time, the facial motion a frame at a time: the stated
    lookahead (the slower of the two, then what the batching adds) bounds every frame's wait, tightly."""
    audio = speech_like(2.0, seed=8)  # 50 frames
    session = pipeline.open_stream(prepared, GenerationParams(pose="generated", stream_batch=stream_batch, seed=2))
    latency = session.latency
    sizes, late = frames_late(session, audio)
    assert session.frames_made == sum(sizes) == 50
    assert latency.head_pose == 160 and latency.facial_motion + latency.audio_features == 120  # the pose is slower
    # A code step's burst of poses fills whole batches of 1 or 2; a batch of 5 spans two bursts, so a frame of the
    # first may wait for the whole next one, as frames that become ready one by one wait for 4 more.
    bursts_fill_batches = pipeline.pose_mapper.net.downsample % stream_batch == 0
    assert latency.stage2_batch == (0 if bursts_fill_batches else 40 * (stream_batch - 1))
    assert max(late) == round(latency.total * 25 / 1000)


def frames_late(session, audio: np.ndarray) -> tuple[list[int], list[int]]:
    """Push ``audio`` in 40-ms chunks: the sizes of the frame batches made, and after every chunk how many whole
    frames of audio have arrived beyond the frames made."""
    sizes, late = [], []
    for chunk in chunks(audio, FRAME_SAMPLES):
        sizes += [len(batch) for batch in session.push(chunk)]
        late.append(session.motion.audio.received // FRAME_SAMPLES - session.frames_made)
    sizes += [len(batch) for batch in session.close()]
    return sizes, late


def test_buffers_stay_bounded_on_an_endless_stream(pipeline, prepared):
    audio = speech_like(9.6, seed=4)  # 240 frames: 5 decoder windows of the facial motion, 10 pose hops
    stream = MotionStream(pipeline, prepared, GenerationParams(pose="generated"))
    sizes = []
    with torch.no_grad():
        for chunk in chunks(audio, 2 * FRAME_SAMPLES):
            stream.push(chunk)
            sizes.append(stream.buffer_sizes())
    first, second = sizes[30:60], sizes[60:120]  # 2.4–4.8 s and 4.8–9.6 s
    peak = {key: max(size[key] for size in first) for key in first[0]}
    assert peak == {key: max(size[key] for size in second) for key in second[0]}
    assert peak["audio samples"] <= 2 * FRAME_SAMPLES + FRAME_SAMPLES and peak["facial cache"] == 49


def test_wav2vec2_streams_with_a_window_and_a_measured_difference(pipeline, prepared, tmp_path):
    """wav2vec 2.0 sees the whole utterance offline; streaming encodes a sliding window (2 s before, 120 ms after,
    normalised over itself). With the random stand-in (a 2-layer transformer) the streamed β differed from the
    offline one by 9.7e-3 on average and 8.1e-2 at most (measured 2026-12-01; 7.0e-3 and 4.0e-2 when first
    measured; bounds at about twice that); with a window covering the whole utterance it is exact."""
    torch.manual_seed(0)
    folder = save_wav2vec2_standin(tmp_path / "wav2vec2")
    network = tiny_init_args("facial_motion")["network"]
    facial = AudioToMotion("wav2vec2", {"name_or_path": str(folder)}, network=network).eval()
    standin = TalkingHeadPipeline(facial, pipeline.pose_mapper, pipeline.motion_vae)
    audio = speech_like(SECONDS, seed=5)
    params = GenerationParams(pose="still")
    offline = standin.motion(prepared, audio, params)
    exact = streamed_motion(standin, prepared, audio, params, 1000, audio_context=(100, 100))
    torch.testing.assert_close(exact["beta"], offline["beta"], atol=1e-5, rtol=0)
    windowed = streamed_motion(standin, prepared, audio, params, 1000)
    difference = (windowed["beta"] - offline["beta"]).abs()
    assert difference.mean() < 0.02 and difference.max() < 0.16


def test_cli_stream_writes_a_fragmented_mp4_matching_the_offline_video(tiny_checkpoints, tmp_path, capsys):
    skimage_portrait = tmp_path / "portrait.png"
    Image.fromarray(skimage.data.astronaut()).save(skimage_portrait)
    sf.write(tmp_path / "speech.wav", speech_like(0.8, seed=6), 16000)
    common = ["--image", str(skimage_portrait), "--audio", str(tmp_path / "speech.wav")]
    common += ["--checkpoints", str(tiny_checkpoints), "--pose", "still"]
    assert generate_main([*common, "--out", str(tmp_path / "offline.mp4")]) == 0
    capsys.readouterr()
    assert generate_main([*common, "--out", str(tmp_path / "streamed.mp4"), "--stream"]) == 0
    err = capsys.readouterr().err.strip().splitlines()[-1]
    match = re.fullmatch(r"first frame (\d+) ms after the first audio chunk; real-time factor ([0-9.]+)", err)
    assert match and float(match[1]) > 0 and float(match[2]) > 0
    streamed, offline = (np.stack(list(iter_video_frames(tmp_path / n))) for n in ("streamed.mp4", "offline.mp4"))
    assert len(streamed) == len(offline) == 20 and probe_video(tmp_path / "streamed.mp4").has_audio
    difference = np.abs(streamed.astype(float) - offline.astype(float)).mean(axis=(1, 2, 3)) / 255
    assert difference.max() <= FRAME_TOLERANCE
    assert sorted(path.name for path in Path(tmp_path).glob("*.mp4")) == ["offline.mp4", "streamed.mp4"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--stream-batch", "2"], "--stream-batch needs --stream"),
        (["--stream", "--stream-batch", "0"], "≥ 1"),
        (["--pause-depth", "-3"], "--pause-depth must be 0 or more dB, got -3"),
    ],
)
def test_cli_flag_mistakes_are_one_line_and_write_nothing(tiny_checkpoints, tmp_path, capsys, flags, message):
    Image.fromarray(skimage.data.astronaut()).save(tmp_path / "portrait.png")
    sf.write(tmp_path / "speech.wav", speech_like(0.4, seed=7), 16000)
    argv = ["--image", str(tmp_path / "portrait.png"), "--audio", str(tmp_path / "speech.wav"), "--quiet"]
    argv += ["--checkpoints", str(tiny_checkpoints), "--out", str(tmp_path / "out.mp4"), *flags]
    assert generate_main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("talkinghead-generate: error:") and message in lines[0]
    assert not (tmp_path / "out.mp4").exists()


class FakeClock:
    """``perf_counter`` and ``sleep`` of a clock that only moves when slept on or advanced: pacing is exact."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class SlowSession:
    """A stand-in session whose every push costs ``cost_s`` on ``clock``: one black frame per 640 samples."""

    def __init__(self, clock: FakeClock, cost_s: float) -> None:
        self.clock, self.cost_s, self.pushes, self.received, self.frames_made = clock, cost_s, [], 0, 0

    def _frames(self) -> list[np.ndarray]:
        due = self.received // FRAME_SAMPLES - self.frames_made
        self.frames_made += due
        return [np.zeros((due, 16, 16, 3), np.uint8)] if due > 0 else []

    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        self.clock.sleep(self.cost_s)
        self.pushes.append(len(samples))
        self.received += len(samples)
        return self._frames()

    def close(self) -> list[np.ndarray]:
        return self._frames()


def test_realtime_pacing_pushes_what_has_arrived_when_processing_falls_behind(tmp_path, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(streaming, "time", clock)
    speech = speech_like(0.8)  # 20 chunks of 40 ms
    fast, slow = SlowSession(clock, 0.01), SlowSession(clock, 0.1)  # 10 / 100 ms per push: ahead of / behind speech
    fast_report = stream_to_mp4(fast, speech, tmp_path / "fast.mp4", realtime=True)
    slow_report = stream_to_mp4(slow, speech, tmp_path / "slow.mp4", realtime=True)
    assert sum(fast.pushes) == sum(slow.pushes) == len(speech) == 20 * FRAME_SAMPLES
    assert fast.pushes == [FRAME_SAMPLES] * 20  # never behind: one chunk per push
    # behind: the first chunk is pushed at 40 ms and done at 140 ms, when the chunks ending at 80 and 120 ms have
    # arrived; they are done at 240 ms, when those ending at 160, 200 and 240 ms have
    assert slow.pushes[:3] == [FRAME_SAMPLES, 2 * FRAME_SAMPLES, 3 * FRAME_SAMPLES]
    assert all(push % FRAME_SAMPLES == 0 for push in slow.pushes)  # whole chunks only
    assert fast_report.first_frame_ms == pytest.approx(10.0) and slow_report.first_frame_ms == pytest.approx(100.0)
    assert fast_report.real_time_factor == pytest.approx(20 * 0.01 / 0.8)
    assert slow_report.real_time_factor == pytest.approx(len(slow.pushes) * 0.1 / 0.8)


@pytest.mark.parametrize("pose", ["still", "generated"])
def test_speech_shorter_than_one_frame_streams_no_frame(pipeline, prepared, pose):
    session = pipeline.open_stream(prepared, GenerationParams(pose=pose))
    assert session.push(speech_like(0.02)) == []  # 320 samples: half a frame
    assert session.close() == [] and session.frames_made == 0
