"""Stage 1 on a 60-s utterance (1500 frames, 30× the tiny training window): bounded context and caches, no drift.

The tiny networks (``*_tiny.yaml`` model arguments) have random weights, so the test runs in seconds. What it
guards: every key/value cache stays within its ``max_context`` and the pose decoder never attends over more
than its training window, whatever the length (bounded memory, the training view); the windowing itself adds no
drift, collapse or explosion (per-channel mean and std of β and of the pose over the last 10 s within the
stated tolerance of the first 10 s). Trained networks are measured by ``benchmarks/bench_long_utterance.py``.
"""

import pytest
import torch
import yaml

from talkinghead.models import AudioToMotion, HeadPoseGenerator
from talkinghead.models.attention import DecoderCache
from talkinghead.models.checkpoints import network_arguments
from tests.helpers import ROOT, speech_like, tiny_init_args

FPS, SECONDS, SPAN = 25, 60, 10 * 25  # statistics over the first and the last 10 s
MAX_STD_RATIO = 1.5  # std(last 10 s) / std(first 10 s) per channel within [1 / 1.5, 1.5]
MAX_MEAN_SHIFT = 0.5  # |mean(last) − mean(first)| per channel at most half the first 10 s' std


@pytest.fixture(scope="module")
def long_run() -> dict:
    """β, pose, every cache's (max_context, length) after each update, and each decoder pass's code count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one frame at a time: a tiny network is latency-bound, threads only contend
    torch.manual_seed(0)
    facial = AudioToMotion(**network_arguments(AudioToMotion, tiny_init_args("facial_motion"))).eval()
    mapper = {**tiny_init_args("pose_mapper"), "vqvae_network": tiny_init_args("pose_vqvae")["network"]}
    head = HeadPoseGenerator(**network_arguments(HeadPoseGenerator, mapper)).eval()
    audio = torch.from_numpy(speech_like(SECONDS))[None]
    alpha, initial_pose = torch.zeros(1, 40), torch.tensor([[0.05, -0.1, 0.02, 0.5, -0.3, 40.0]])
    record = {"caches": [], "decoded_codes": []}
    update = DecoderCache.update
    transformer = head.vqvae.decoder_transformer
    transform = transformer.forward

    def spy_update(cache: DecoderCache, positions: torch.Tensor, layers: list) -> None:
        update(cache, positions, layers)
        record["caches"].append((cache.max_context, len(cache), max(k.shape[2] for k, _ in cache.layers)))

    def spy_transform(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Code steps one step of the pose decoder's transformer attends over (all of its pass, or its band)."""
        record["decoded_codes"].append(x.shape[1] if mask is None else int((~mask).sum(-1).max()))
        return transform(x, mask=mask)

    with pytest.MonkeyPatch.context() as patch, torch.no_grad():
        patch.setattr(DecoderCache, "update", spy_update)
        patch.setattr(transformer, "forward", spy_transform)
        record["beta"] = facial(audio, alpha, SECONDS * FPS)["beta"][0]
        generator = torch.Generator().manual_seed(0)
        record["pose"] = head(audio, alpha, initial_pose, SECONDS * FPS, 1.0, None, generator)[0]
    torch.set_num_threads(threads)
    return record


def assert_stationary(values: torch.Tensor, name: str) -> None:
    """(T, C): every channel moves in the first 10 s, and its last 10 s keep its std and mean (module constants)."""
    first, last = values[:SPAN], values[-SPAN:]
    assert torch.isfinite(values).all(), name
    scale = first.std(0)
    assert (scale > 1e-4).all(), f"{name}: constant channels {(scale <= 1e-4).nonzero().flatten().tolist()}"
    ratio = last.std(0) / scale
    shift = (last.mean(0) - first.mean(0)).abs() / scale
    assert ((ratio > 1 / MAX_STD_RATIO) & (ratio < MAX_STD_RATIO)).all(), f"{name}: std ratio {ratio}"
    assert (shift < MAX_MEAN_SHIFT).all(), f"{name}: mean shift / std {shift}"


def test_sixty_seconds_of_speech_keep_the_caches_bounded(long_run):
    contexts = {context for context, _, _ in long_run["caches"]}
    code_steps = tiny_init_args("pose_mapper")["network"]["max_context"]
    assert contexts == {50, code_steps}  # facial-motion frames, pose-mapper code steps (the tiny configs)
    assert all(length <= context and kv <= context for context, length, kv in long_run["caches"])
    assert max(length for context, length, _ in long_run["caches"] if context == 50) == 49
    window = tiny_init_args("pose_vqvae")["network"]["max_context"]
    assert max(long_run["decoded_codes"]) == window // 4  # a pose-decoder step attends over one training window


def test_sixty_seconds_of_speech_do_not_drift(long_run):
    assert long_run["beta"].shape == (SECONDS * FPS, 52) and long_run["pose"].shape == (SECONDS * FPS, 6)
    assert_stationary(long_run["beta"], "β")
    assert_stationary(long_run["pose"], "pose")


def model_and_window(name: str) -> tuple[dict, int]:
    config = yaml.safe_load((ROOT / "lightning_configs" / f"{name}.yaml").read_text())
    return config["model"]["init_args"], config["data"]["window"]


@pytest.mark.parametrize("size", ["", "_tiny"])
def test_configs_bound_the_context_to_the_training_window(size):
    """max_context = data.window (frames), or data.window / downsample (code steps) for the pose mapper."""
    for name in ("facial_motion", "pose_vqvae"):
        init_args, window = model_and_window(name + size)
        assert init_args["network"]["max_context"] == window, name
    init_args, window = model_and_window("pose_mapper" + size)
    downsample = model_and_window("pose_vqvae" + size)[0]["network"]["downsample"]
    assert init_args["network"]["max_context"] * downsample == window
