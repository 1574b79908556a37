"""Visemes (coarticulated lip/jaw curves, lip offsets), blinks, brows and head pose of the embedded corpus."""

import numpy as np
import pytest

from talkinghead.audio import espeak
from talkinghead.audio.envelope import speech_energy
from talkinghead.audio.speech_synthesis import PhonemeEvent, synthesize
from talkinghead.conventions import FPS, FRAME_SAMPLES, POSE_DIM, SAMPLE_RATE
from talkinghead.data.synthetic.motion_synthesis import (
    POSE_LIMITS,
    blink_curves,
    brow_curves,
    head_pose_trajectory,
)
from talkinghead.data.synthetic.visemes import PHONEME_VISEMES, VISEMES, lip_offset_targets, viseme_curves, visemes_of
from talkinghead.face.expression_basis import ARKIT_BLENDSHAPES

JAW = ARKIT_BLENDSHAPES.index("jawOpen")
CLOSE = ARKIT_BLENDSHAPES.index("mouthClose")
BLINK = ARKIT_BLENDSHAPES.index("eyeBlinkLeft")
BROW = ARKIT_BLENDSHAPES.index("browInnerUp")
MAX_VISEME_STEP = 0.5  # per frame at 25 fps (40 ms); the largest seen on fast speech (260 wpm) is 0.45
MAX_BROW_STEP = 0.3
MAX_POSE_STEP = (np.radians(3.0), 0.5)  # rad, cm per frame at 25 fps (75°/s, 12.5 cm/s)

needs_espeak = pytest.mark.skipif(
    espeak.library_name() is None,
    reason="libespeak-ng is not installed (apt-get install espeak-ng, or `make venv`)",
)


def _frames_in(phonemes, symbols, num_frames):
    """Frames whose centre lies inside a phoneme with one of ``symbols``."""
    times = (np.arange(num_frames) + 0.5) / FPS
    inside = [any(p.start <= t < p.end and p.symbol in symbols for p in phonemes) for t in times]
    return np.flatnonzero(inside)


def _lip_ring():
    """A stand-in lip outline (cm): 8 upper and 8 lower vertices on an ellipse, corners at y = -5."""
    angles = np.linspace(0.0, 2.0 * np.pi, 16, endpoint=False)
    return np.stack([2.4 * np.cos(angles), -5.0 + 0.7 * np.sin(angles), 1.2 - 0.3 * np.cos(angles) ** 2], axis=1)


def _timeline(*segments):
    """PhonemeEvents from (symbol, duration) pairs, back to back from t = 0."""
    events, start = [], 0.0
    for symbol, duration in segments:
        events.append(PhonemeEvent(symbol, start, start + duration))
        start += duration
    return events


def test_viseme_table_is_complete():
    assert all(name in VISEMES for names in PHONEME_VISEMES.values() for name in names)
    assert visemes_of("_:") == ("rest",)
    assert visemes_of("@5") == ("UH",)  # variant digit stripped
    assert visemes_of("Q") == ("HH",)  # unknown consonant: follows its neighbours
    for viseme in VISEMES.values():
        assert all(0.0 <= w <= 1.0 for w in viseme.weights.values())
        assert set(viseme.weights) <= set(ARKIT_BLENDSHAPES)


@needs_espeak
def test_jaw_opens_on_vowels_and_lips_close_on_bilabials():
    spoken = synthesize("Bob made a map of my empire, maybe.", "en-us").phonemes
    num_frames = int(np.ceil(spoken[-1].end * FPS))
    curves = viseme_curves(spoken, num_frames, FPS)
    vowels = _frames_in(spoken, {"a", "aI", "eI", "0", "A:", "E"}, num_frames)
    bilabials = _frames_in(spoken, {"p", "b", "m"}, num_frames)
    assert len(vowels) >= 5 and len(bilabials) >= 5
    assert curves[vowels, JAW].mean() > curves[bilabials, JAW].mean() + 0.15
    assert curves[bilabials, CLOSE].mean() > curves[vowels, CLOSE].mean() + 0.1
    assert 0.5 <= curves[:, JAW].max() <= 0.95


@needs_espeak
def test_curves_are_smooth_and_bounded():
    spoken = synthesize("The five famous people would move forward to the blue moon.", "en-gb-x-rp").phonemes
    num_frames = int(np.ceil(spoken[-1].end * FPS))
    curves = viseme_curves(spoken, num_frames, FPS)
    assert curves.dtype == np.float32 and curves.shape == (num_frames, 52)
    assert curves.min() >= 0.0 and curves.max() <= 1.0
    assert np.abs(np.diff(curves, axis=0)).max() < MAX_VISEME_STEP
    brows = brow_curves(spoken, num_frames, FPS, np.random.default_rng(0), probability=1.0)
    assert brows.min() >= 0.0 and brows.max() <= 1.0 and brows[:, BROW].max() > 0.2
    assert np.abs(np.diff(brows, axis=0)).max() < MAX_BROW_STEP


def test_brows_rise_around_stressed_syllables_only():
    spoken = _timeline(("_", 1.0), ("m", 0.1), ("a", 0.2), ("p", 0.1), ("_", 1.6))
    spoken[2] = PhonemeEvent("a", spoken[2].start, spoken[2].end, stressed=True)
    brows = brow_curves(spoken, 100, FPS, np.random.default_rng(1), probability=1.0)[:, BROW]
    peak = (int(np.argmax(brows)) + 0.5) / FPS
    assert spoken[2].start - 0.1 < peak < spoken[2].end + 0.2
    assert brows[:15].max() < 0.01 and brows[-25:].max() < 0.01
    unstressed = [PhonemeEvent(p.symbol, p.start, p.end) for p in spoken]
    assert not brow_curves(unstressed, 100, FPS, np.random.default_rng(1), probability=1.0).any()


def test_labiodental_tucks_the_lower_lip_and_rounding_protrudes():
    lips = _lip_ring()
    lower = lips[:, 1] < -5.0 - 1e-6
    upper = lips[:, 1] > -5.0 + 1e-6
    spoken = _timeline(("_", 0.3), ("f", 0.12), ("_", 0.4), ("u:", 0.25), ("_", 0.5))
    offsets = lip_offset_targets(spoken, lips, 40, FPS)
    assert offsets.shape == (40, 16, 3) and offsets.dtype == np.float32
    assert np.linalg.norm(offsets, axis=-1).max() <= 0.3 + 1e-6
    at_f = int((spoken[1].start + spoken[1].end) / 2 * FPS)
    assert offsets[at_f, lower, 2].mean() < -0.1  # lower lip moves back (-z) ...
    assert offsets[at_f, lower, 1].mean() > 0.03  # ... and up
    assert np.abs(offsets[at_f, upper][:, [0, 2]]).max() < 0.02  # the upper lip only moves down (the seal)
    at_u = int((spoken[3].start + spoken[3].end) / 2 * FPS)
    assert offsets[at_u, :, 2].min() > 0.05  # lips protrude
    left, right = int(np.argmin(lips[:, 0])), int(np.argmax(lips[:, 0]))
    assert offsets[at_u, left, 0] > 0.1 and offsets[at_u, right, 0] < -0.1  # corners move inwards
    assert np.abs(offsets[0]).max() < 0.01 and np.abs(offsets[-1]).max() < 0.01  # rest in silence


def test_the_seal_closes_the_built_in_face_on_bilabials_and_open_vowels_open_it():
    import torch

    from talkinghead.face import PerspectiveCamera, apply_pose, builtin_morphable_model
    from talkinghead.metrics.articulation import inner_lip_opening

    model, camera = builtin_morphable_model(), PerspectiveCamera()
    spoken = _timeline(("_", 0.4), ("m", 0.3), ("_", 0.1), ("a", 0.3), ("_", 0.2), ("s", 0.2), ("_", 0.2))
    num_frames = 38
    beta = viseme_curves(spoken, num_frames, FPS)
    offsets = lip_offset_targets(spoken, model.vertices()[model.lip_ids].numpy(), num_frames, FPS)
    vertices = model.vertices(None, torch.from_numpy(beta), torch.from_numpy(offsets))
    opening = inner_lip_opening(camera.project(apply_pose(vertices, torch.zeros(num_frames, 6)))[..., :2].numpy())
    neutral = inner_lip_opening(camera.project(apply_pose(model.vertices()[None], torch.zeros(1, 6)))[..., :2].numpy())
    at_m, at_a, at_s = int(0.55 * FPS), int(0.95 * FPS), int(1.4 * FPS)
    assert neutral[0] > 0.03 and opening[:5].min() > 0.03  # the neutral lips, and so a pause's, are parted ...
    assert opening[at_m] < 0.012 and opening[at_s] < neutral[0] - 0.003  # ... /m/ nearly closes them, /s/ partly
    assert opening[at_a] > 0.1  # an open vowel opens them over a tenth of the face height


def test_blinks_come_every_two_to_six_seconds():
    closure = blink_curves(60 * FPS, FPS, np.random.default_rng(7))[:, BLINK]
    starts = np.flatnonzero((closure[1:] > 0.3) & (closure[:-1] <= 0.3)) + 1
    assert 10 <= len(starts) <= 30
    intervals = np.diff(starts) / FPS
    assert intervals.min() >= 2.0 - 2 / FPS and intervals.max() <= 6.0 + 2 / FPS
    for start in starts:
        closed = closure[max(start - 3, 0) : start + 8]
        assert closed.max() > 0.75  # nearly closes
        assert (closed > 0.05).sum() <= 7  # and is over within about 250 ms
    both = blink_curves(60 * FPS, FPS, np.random.default_rng(7))
    np.testing.assert_array_equal(both[:, BLINK], both[:, ARKIT_BLENDSHAPES.index("eyeBlinkRight")])
    assert np.count_nonzero(both.any(axis=0)) == 2


def test_speech_energy_is_frame_aligned():
    audio = np.zeros(SAMPLE_RATE, np.float32)
    audio[3 * FRAME_SAMPLES : 4 * FRAME_SAMPLES] = 0.5  # exactly frame 3
    energy = speech_energy(audio, SAMPLE_RATE, 30, FPS)
    assert energy.shape == (30,) and energy.dtype == np.float32
    np.testing.assert_allclose(energy[3], 0.5, rtol=1e-6)
    assert np.count_nonzero(energy) == 1  # frames past the end of the audio count as silence


def test_head_pose_stays_in_range_and_follows_speech():
    seconds = 20
    ratios = []
    for seed in range(8):
        noise = np.random.default_rng(100 + seed).normal(0.0, 0.1, SAMPLE_RATE * seconds // 2)
        audio = np.concatenate([noise, np.zeros_like(noise)]).astype(np.float32)  # speech, then silence
        pose = head_pose_trajectory(audio, SAMPLE_RATE, seconds * FPS, FPS, np.random.default_rng(seed))
        assert pose.shape == (seconds * FPS, POSE_DIM) and pose.dtype == np.float32
        assert (np.abs(pose) <= POSE_LIMITS).all()
        step = np.abs(np.diff(pose, axis=0))
        assert step[:, :3].max() < MAX_POSE_STEP[0] and step[:, 3:].max() < MAX_POSE_STEP[1]
        half = seconds * FPS // 2
        speed = np.linalg.norm(np.diff(pose[:, :3], axis=0), axis=1)
        ratios.append(speed[10 : half - 10].mean() / speed[half + 10 : -10].mean())
    assert np.mean(ratios) > 1.8 and min(ratios) > 1.2


def test_head_pose_uses_realistic_ranges():
    poses = np.concatenate(
        [
            head_pose_trajectory(
                np.full(SAMPLE_RATE * 30, 0.1, np.float32), SAMPLE_RATE, 30 * FPS, FPS, np.random.default_rng(s)
            )
            for s in range(10)
        ]
    )
    degrees = np.degrees(poses[:, :3])
    assert 2.0 < degrees[:, 0].std() < 8.0  # pitch
    assert 3.0 < degrees[:, 1].std() < 12.0  # yaw, the largest
    assert 1.0 < degrees[:, 2].std() < 5.0  # roll


def test_head_pose_moves_the_face_like_real_speakers():
    """The MediaPipe head-motion measure on the canonical face posed by 4-s trajectories (projected by the
    pipeline camera; speech-like audio: 0.25-s bursts, a 0.6-s pause every 2 s), per part, against the medians
    of 71 four-second segments of 18 public talking-head clips (motion_synthesis docstring): roll, nose offset
    and eye midpoint each within a factor 1.8 (the nose offset, i.e. yaw and pitch, is the widest: 1.7× in
    x), the summed measure within 0.13–0.30 (real: 0.197, p10 0.129)."""
    import torch

    from talkinghead.face.builtin import builtin_morphable_model
    from talkinghead.face.camera import PerspectiveCamera
    from talkinghead.face.pose import apply_pose
    from talkinghead.metrics.articulation import head_motion_parts

    model = builtin_morphable_model()
    face = model.vertices(torch.zeros(1, model.num_identity), torch.zeros(1, model.num_expression))
    real = np.array([0.028, 0.022, 0.023, 0.066, 0.041])  # roll, nose x / y, eye midpoint x / y
    parts = []
    for seed in range(40):
        t = np.arange(SAMPLE_RATE * 4) / SAMPLE_RATE
        bursts = ((t % 2.0) < 1.4) & ((t % 0.35) < 0.25)
        audio = (np.random.default_rng(seed).normal(0.0, 0.1, len(t)) * bursts).astype(np.float32)
        pose = torch.from_numpy(head_pose_trajectory(audio, SAMPLE_RATE, 4 * FPS, FPS, np.random.default_rng(seed)))
        points = PerspectiveCamera().project(apply_pose(face.expand(len(pose), -1, -1), pose))[..., :2].numpy()
        parts.append(head_motion_parts(points))
    median = np.median(parts, axis=0)
    assert ((median / real > 1 / 1.8) & (median / real < 1.8)).all(), median
    assert 0.13 < np.median(np.sum(parts, axis=1)) < 0.30


def test_motion_is_deterministic_from_the_seed():
    spoken = _timeline(("_", 0.2), ("h", 0.1), ("a", 0.2), ("_", 0.5))
    spoken = [PhonemeEvent(p.symbol, p.start, p.end, stressed=True) for p in spoken]
    audio = np.random.default_rng(0).normal(0.0, 0.1, SAMPLE_RATE * 8).astype(np.float32)

    def motion(seed):
        return [
            blink_curves(200, FPS, np.random.default_rng(seed)),
            brow_curves(spoken, 200, FPS, np.random.default_rng(seed), probability=0.5),
            head_pose_trajectory(audio, SAMPLE_RATE, 200, FPS, np.random.default_rng(seed)),
        ]

    for first, again, other in zip(motion(3), motion(3), motion(4), strict=True):
        np.testing.assert_array_equal(first, again)
        assert not np.array_equal(first, other)
