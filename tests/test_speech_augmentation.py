"""SpeechAugmentation: each condition measured on signals whose answer is known."""

import math

import pytest
import torch

from talkinghead.audio.augmentation import SpeechAugmentation
from talkinghead.conventions import SAMPLE_RATE


def tone(hz: float, seconds: float = 1.0, batch: int = 1) -> torch.Tensor:
    t = torch.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return torch.sin(2 * math.pi * hz * t).repeat(batch, 1)


def only(**kwargs) -> SpeechAugmentation:
    """One condition switched on for every utterance, the others off; level unchanged unless asked."""
    settings = {"probability": 1.0, "gain_db": (0.0, 0.0), "p_noise": 0.0, "p_band": 0.0, "p_reverb": 0.0}
    return SpeechAugmentation(**(settings | kwargs)).train()


def level_db(x: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(x.pow(2).mean(dim=-1))


def test_eval_mode_and_probability_zero_leave_the_speech_untouched():
    speech = torch.randn(4, SAMPLE_RATE)
    assert torch.equal(SpeechAugmentation().eval()(speech), speech)
    assert torch.equal(SpeechAugmentation(probability=0.0).train()(speech), speech)


def test_gain_is_within_the_range_in_decibels():
    speech = tone(440, batch=64)
    gained = only(gain_db=(-15.0, 6.0))(speech, torch.Generator().manual_seed(0))
    change = level_db(gained) - level_db(speech)
    assert change.min() >= -15.0 - 1e-3 and change.max() <= 6.0 + 1e-3
    assert change.max() - change.min() > 15.0  # the range is used, not one value


def test_noise_is_added_at_the_drawn_snr():
    speech = tone(440, batch=32)
    noisy = only(p_noise=1.0, snr_db=(20.0, 20.0))(speech, torch.Generator().manual_seed(0))
    snr = level_db(speech) - level_db(noisy - speech)
    assert snr.mean().item() == pytest.approx(20.0, abs=0.3)


def test_band_limits_remove_a_tone_above_the_low_pass_and_keep_one_inside():
    augment = only(p_band=1.0, lowpass_hz=(3000.0, 3000.0), highpass_hz=(100.0, 100.0))
    inside = augment(tone(1000), torch.Generator().manual_seed(0))
    above = augment(tone(7000), torch.Generator().manual_seed(0))  # more than one octave above the cut-off
    assert (level_db(inside) - level_db(tone(1000))).abs().item() < 0.01
    assert (level_db(above) - level_db(tone(7000))).item() < -60


def test_reverb_adds_a_decaying_tail_without_moving_the_speech_in_time():
    click = torch.zeros(1, SAMPLE_RATE)
    click[0, 1000] = 1.0
    augment = only(p_reverb=1.0, rt60_s=(0.3, 0.3), drr_db=(5.0, 5.0))
    wet = augment(click, torch.Generator().manual_seed(0))
    assert wet.abs().argmax().item() == 1000  # the direct sound stays where it was and dominates
    tail = (wet - click)[0, 1000:]
    early, late = tail[:800].pow(2).sum(), tail[3200:4000].pow(2).sum()  # 0–50 ms vs 200–250 ms
    # exponential energy decay of 60 dB per 0.3 s: 200 ms later the energy is 40 dB lower (noise: ±8 dB)
    assert 10 * torch.log10(early / late).item() == pytest.approx(40.0, abs=8.0)
    direct_to_reverberant = 10 * torch.log10(click.pow(2).sum() / (wet - click).pow(2).sum()).item()
    assert direct_to_reverberant == pytest.approx(5.0, abs=1e-3)


def test_a_stage_module_augments_its_training_speech_only_while_training():
    from talkinghead.lightning.facial_motion import FacialMotionModule

    speech = 0.1 * torch.randn(2, SAMPLE_RATE)
    plain = FacialMotionModule(network={"d_model": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 16})
    augmented = FacialMotionModule(
        network={"d_model": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 16},
        speech_augmentation={"probability": 1.0, "gain_db": (-12.0, -12.0), "p_noise": 0, "p_band": 0, "p_reverb": 0},
    )
    assert torch.equal(plain.train().training_speech(speech), speech)
    quieter = augmented.train().training_speech(speech)
    change = level_db(quieter) - level_db(speech)
    assert torch.allclose(change, torch.full_like(change, -12.0), atol=1e-3)
    assert torch.equal(augmented.eval().training_speech(speech), speech)
