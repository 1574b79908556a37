"""The weight-free articulation metrics on landmark tracks whose answers are known analytically."""

import numpy as np
import pytest

from talkinghead.metrics.articulation import (
    head_motion,
    inner_lip_opening,
    lip_sync_r,
    opening_agreement,
    speech_envelope,
)

FRAMES = 100


def face_track(opening: np.ndarray, roll: np.ndarray | None = None, shift: np.ndarray | None = None) -> np.ndarray:
    """(T, 468, 2) landmarks: face height 100 px, eyes 60 px apart, the inner lips ``opening · 100`` px apart,
    the whole face rotated by ``roll`` (radians) about its centre and moved by ``shift`` (px)."""
    points = np.zeros((len(opening), 468, 2))
    points[:, 10] = (0, -50)
    points[:, 152] = (0, 50)
    points[:, 33] = (-30, -20)
    points[:, 263] = (30, -20)
    points[:, 1] = (0, 5)
    points[:, 13, 1] = 20 - 50 * opening
    points[:, 14, 1] = 20 + 50 * opening
    roll = np.zeros(len(opening)) if roll is None else roll
    cos, sin = np.cos(roll)[:, None], np.sin(roll)[:, None]
    rotated = np.stack((cos * points[..., 0] - sin * points[..., 1], sin * points[..., 0] + cos * points[..., 1]), -1)
    return rotated + (np.zeros((len(opening), 2)) if shift is None else shift)[:, None] + 200


def test_opening_is_lip_distance_over_face_height_whatever_the_size_and_roll():
    opening = np.linspace(0.0, 0.1, FRAMES)
    track = face_track(opening, roll=np.linspace(-0.3, 0.3, FRAMES))
    np.testing.assert_allclose(inner_lip_opening(track), opening, atol=1e-12)
    np.testing.assert_allclose(inner_lip_opening(track * 3.0), opening, atol=1e-12)


def test_speech_envelope_is_the_rms_of_each_40_ms_hop():
    hop = 640
    levels = np.arange(1, 6, dtype=float)
    audio = np.concatenate([level * np.where(np.arange(hop) % 2, 1.0, -1.0) for level in levels])
    np.testing.assert_allclose(speech_envelope(audio, 7), [*levels, 0.0, 0.0])


@pytest.mark.parametrize("lag", [-2, -1, 0, 1, 2])
def test_lip_sync_r_finds_a_mouth_that_lags_the_speech_by_up_to_two_frames(lag):
    envelope = np.random.default_rng(0).random(FRAMES + 10)
    opening = np.roll(envelope, lag)[5 : 5 + FRAMES]
    assert lip_sync_r(opening, envelope[5 : 5 + FRAMES]) == pytest.approx(1.0, abs=1e-12)
    assert lip_sync_r(opening, envelope[5 : 5 + FRAMES], max_lag=0) < (0.3 if lag else 1.01)


def test_head_motion_sums_roll_and_position_spreads():
    still = face_track(np.zeros(FRAMES))
    assert head_motion(still) == pytest.approx(0.0, abs=1e-12)
    roll = 0.1 * np.where(np.arange(FRAMES) % 2, 1.0, -1.0)  # std 0.1 rad; nose and eye centre move with it
    rolled = head_motion(face_track(np.zeros(FRAMES), roll=roll))
    shift = np.stack((np.where(np.arange(FRAMES) % 2, 6.0, -6.0), np.zeros(FRAMES)), -1)  # ±0.1 inter-ocular
    shifted = head_motion(face_track(np.zeros(FRAMES), shift=shift))
    assert shifted == pytest.approx(0.1, abs=1e-12)
    # roll 0.1 rad + the nose (25 px below the eye centre) swinging ±sin(0.1)·25/60 sideways and the eye centre
    # (20 px above the rotation centre) swinging ±sin(0.1)·20/60 sideways; vertical changes are equal at ±roll
    expected = 0.1 + np.sin(0.1) * 25 / 60 + np.sin(0.1) * 20 / 60
    assert rolled == pytest.approx(expected, rel=1e-9)


def test_agreement_of_a_scaled_copy_is_r_one_and_the_scale():
    real = np.random.default_rng(1).random(FRAMES) * 0.05
    r, ratio = opening_agreement(0.5 * real + 0.01, real)
    assert r == pytest.approx(1.0, abs=1e-12)
    assert ratio == pytest.approx(0.5, abs=1e-12)
    r, _ = opening_agreement(-real, real)
    assert r == pytest.approx(-1.0, abs=1e-12)
