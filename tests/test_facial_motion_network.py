"""Global and Local Facial Motion Generator (Eq. 2, 3): masks, cached decoding, causality, ablations, overfit."""

import math

import pytest
import torch

from talkinghead.face import ARKIT_BLENDSHAPES, LIP_BLENDSHAPES, OTHER_BLENDSHAPES, builtin_identity_std
from talkinghead.models import FacialMotionGenerator, merge_blendshapes, split_blendshapes
from talkinghead.models.attention import (
    DecoderCache,
    alibi_slopes,
    alignment_mask,
    biased_causal_mask,
    periodic_positional_encoding,
)

AUDIO_DIM = 16
KEYS = ("beta_lip", "beta_other", "lip_offsets")


def make_model(**kwargs) -> FacialMotionGenerator:
    torch.manual_seed(0)
    config = dict(d_model=32, num_heads=4, num_layers=2, ff_dim=64, dropout=0.0, period=5)
    config.update(kwargs)
    return FacialMotionGenerator(AUDIO_DIM, identity_std=builtin_identity_std(), **config).eval()


def make_inputs(batch: int = 2, length: int = 20, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    audio = torch.randn(batch, length, AUDIO_DIM, generator=generator)
    alpha = torch.randn(batch, 40, generator=generator) * builtin_identity_std()
    return audio, alpha


def random_targets(batch: int, length: int, seed: int = 2) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "beta_lip": torch.rand(batch, length, 28, generator=generator),
        "beta_other": torch.rand(batch, length, 24, generator=generator),
        "lip_offsets": 0.1 * torch.randn(batch, length, 40, 3, generator=generator),
    }


def assert_outputs_close(a: dict, b: dict, atol: float = 1e-5, frames: slice | None = None) -> None:
    frames = frames or slice(None)
    for key in KEYS:
        torch.testing.assert_close(a[key][:, frames], b[key][:, frames], atol=atol, rtol=0)


def test_split_and_merge_blendshapes_round_trip_in_arkit_order():
    beta = torch.rand(3, 5, 52)
    lip, other = split_blendshapes(beta)
    assert lip.shape == (3, 5, 28) and other.shape == (3, 5, 24)
    assert torch.equal(lip[..., 0], beta[..., ARKIT_BLENDSHAPES.index(LIP_BLENDSHAPES[0])])
    assert torch.equal(other[..., -1], beta[..., ARKIT_BLENDSHAPES.index(OTHER_BLENDSHAPES[-1])])
    assert torch.equal(merge_blendshapes(lip, other), beta)


def test_biased_causal_mask_matches_faceformer_formula():
    slopes = alibi_slopes(4)
    torch.testing.assert_close(slopes, torch.tensor([2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8]))
    assert alibi_slopes(6).shape == (6,)
    positions = torch.arange(7)
    mask = biased_causal_mask(positions, positions, slopes, period=3)
    assert mask.shape == (4, 7, 7)
    for i in range(7):
        for j in range(7):
            expected = -((i - j) // 3) * slopes if j <= i else torch.full((4,), -math.inf)
            torch.testing.assert_close(mask[:, i, j], expected)
    windowed = biased_causal_mask(positions, positions, slopes, period=3, max_context=2)
    assert torch.isinf(windowed[0, 5, 3]) and windowed[0, 5, 4] == 0
    # Arbitrary (e.g. cached, long) positions without any maximum length.
    far = biased_causal_mask(torch.tensor([10_000]), torch.tensor([9_994, 10_000]), slopes, period=3)
    torch.testing.assert_close(far[:, 0, 0], -2 * slopes)


def test_alignment_mask_window_and_periodic_encoding():
    mask = alignment_mask(torch.arange(6), torch.arange(6), (1, 2))
    allowed = torch.isfinite(mask)
    for t in range(6):
        assert allowed[t].nonzero().flatten().tolist() == [s for s in range(6) if t - 1 <= s <= t + 2]
    encoding = periodic_positional_encoding(torch.arange(3 * 25 + 1), 16, period=25)
    torch.testing.assert_close(encoding[:25], encoding[25:50])
    torch.testing.assert_close(encoding[75], encoding[0])


@pytest.mark.parametrize("max_context", [None, 6])
def test_cached_generate_matches_uncached_prefix_reference(max_context):
    """The KV-cached decoder equals re-running the teacher-forced forward on the growing prefix."""
    model = make_model(max_context=max_context)
    audio, alpha = make_inputs(length=16)
    generated = model.generate(audio, alpha)
    reference = {key: [] for key in KEYS}
    previous = {key: generated[key][:, :0] for key in KEYS}
    with torch.no_grad():
        for t in range(audio.shape[1]):
            # Teacher inputs: the reference's own predictions for frames < t; frame t's input is unused.
            teacher = {key: torch.cat((previous[key], torch.zeros_like(generated[key][:, :1])), 1) for key in KEYS}
            out = model(audio, alpha, targets=teacher)
            for key in KEYS:
                reference[key].append(out[key][:, t : t + 1])
                previous[key] = torch.cat((previous[key], out[key][:, t : t + 1]), 1)
    assert_outputs_close(generated, {key: torch.cat(value, 1) for key, value in reference.items()})


def test_teacher_forcing_on_generated_outputs_reproduces_them():
    model = make_model()
    audio, alpha = make_inputs(length=24)
    generated = model.generate(audio, alpha)
    with torch.no_grad():
        forced = model(audio, alpha, targets=generated)
        differentiable = model(audio, alpha)  # targets=None: autoregressive decoding through forward
    assert_outputs_close(forced, generated)
    assert_outputs_close(differentiable, generated)


def test_teacher_forced_outputs_are_causal_in_the_targets():
    model = make_model()
    audio, alpha = make_inputs(length=20)
    targets = random_targets(2, 20)
    changed = {key: value.clone() for key, value in targets.items()}
    t = 9
    for value in changed.values():
        value[:, t:] += 0.5  # target frame t is the input of frame t + 1 only
    with torch.no_grad():
        out, out_changed = model(audio, alpha, targets=targets), model(audio, alpha, targets=changed)
    assert_outputs_close(out, out_changed, atol=0, frames=slice(0, t + 1))
    assert not torch.allclose(out["beta_lip"][:, t + 1], out_changed["beta_lip"][:, t + 1])


@pytest.mark.parametrize(("conv_kernel", "feedforward_layers", "hidden"), [(1, 0, None), (3, 0, None), (3, 2, 24)])
def test_alignment_mask_limits_audio_look_ahead(conv_kernel, feedforward_layers, hidden):
    """The audio projection's MLP and feed-forward blocks are position-wise: the mask and the conv alone set the
    look-ahead."""
    model = make_model(
        audio_window=(2, 2),
        audio_conv_kernel=conv_kernel,
        audio_feedforward_layers=feedforward_layers,
        audio_hidden=hidden,
    )
    past, future = model.audio_context
    assert (past, future) == (2 + conv_kernel // 2, 2 + conv_kernel // 2)
    audio, alpha = make_inputs(length=20)
    targets = random_targets(2, 20)
    t = 8
    late, edge = audio.clone(), audio.clone()
    late[:, t + future + 1 :] += 3.0
    edge[:, t + future] += 3.0
    with torch.no_grad():
        out = model(audio, alpha, targets=targets)
        out_late = model(late, alpha, targets=targets)
        out_edge = model(edge, alpha, targets=targets)
        generated, generated_late = model.generate(audio, alpha), model.generate(late, alpha)
    assert_outputs_close(out, out_late, atol=0, frames=slice(0, t + 1))
    assert_outputs_close(generated, generated_late, atol=0, frames=slice(0, t + 1))
    for key in KEYS:
        assert not torch.allclose(out[key][:, t], out_edge[key][:, t])  # frame t + future is still seen


def test_generate_ten_training_windows_with_bounded_cache():
    window = 12
    model = make_model(max_context=window)
    audio, alpha = make_inputs(batch=1, length=10 * window)
    state = model.start(audio, alpha, max_context=window)
    frames = []
    with torch.no_grad():
        for _ in range(state.length):
            frames.append(model.step(state))
            assert len(state.cache) <= window
            assert all(k.shape[2] <= window and v.shape[2] <= window for k, v in state.cache.layers)
    assert state.position == 10 * window
    for key in KEYS:
        assert torch.isfinite(torch.cat([frame[key] for frame in frames], 1)).all()
    # Trained with the same sliding window, the bounded cache is exact.
    assert_outputs_close(model.generate(audio, alpha), model(audio, alpha, targets=model.generate(audio, alpha)))
    # A full-context model also decodes 10 windows (its cache grows with T unless max_context is given).
    unbounded = make_model()
    long_run = unbounded.generate(audio, alpha, max_context=window)
    assert all(torch.isfinite(value).all() for value in long_run.values())


def test_inference_attends_with_the_training_window_mask():
    """With max_context = c, a training window of length c has the plain causal mask, and every step of
    inference (any position, cache trimmed) uses one of its rows: row t for t < c, the last row afterwards; the
    positional table equals the encoding computed afresh."""
    window = 6
    decoder = make_model(max_context=window).branches["beta_lip"].decoder
    positions = torch.arange(window)
    training = decoder.self_mask(positions, positions, window)
    torch.testing.assert_close(training, decoder.self_mask(positions, positions, None))
    for t in range(5 * window):
        keys = torch.arange(max(0, t - window + 1), t + 1)  # what the cache holds, plus the new frame
        row = min(t, window - 1)
        expected = training[:, row : row + 1, : row + 1]
        torch.testing.assert_close(decoder.self_mask(torch.tensor([t]), keys, window), expected)
    encoding = decoder.positional
    positions = torch.arange(3 * encoding.period + 2)
    assert torch.equal(encoding.table[positions % encoding.period], periodic_positional_encoding(
        positions, encoding.table.shape[1], encoding.period))  # fmt: skip
    with pytest.raises(ValueError, match="audio_window"):
        make_model(max_context=2, audio_window=(2, 2))  # cross-attention would reach beyond the window


@pytest.mark.parametrize("num_layers", [1, 2])
def test_sliding_window_cache_equals_recomputing_from_scratch(num_layers):
    """Cached generation with max_context = c equals, at every frame t, a from-scratch parallel pass over only
    the last L·(c − 1) + 1 frames at their absolute positions (the last c frames for one layer), atol 1e-5."""
    window = 6
    model = make_model(max_context=window, num_layers=num_layers)
    audio, alpha = make_inputs(length=5 * window)
    generated = model.generate(audio, alpha)
    span = num_layers * (window - 1) + 1
    with torch.no_grad():
        memory = model.memory(audio, alpha)
        for name, branch in model.branches.items():
            kv = branch.decoder.memory_kv(memory)
            values = generated[name].flatten(2)
            inputs = torch.cat((branch.start(2), branch.embed(values[:, :-1])), 1)  # frame t's input: output t − 1
            for t in range(audio.shape[1]):
                first = max(0, t - span + 1)
                hidden = branch.decoder(inputs[:, first : t + 1], kv, start=first)
                torch.testing.assert_close(branch.output(hidden[:, -1]), values[:, t], atol=1e-5, rtol=0)


def test_every_parameter_gets_a_gradient_with_scheduled_sampling_too():
    model = make_model(dropout=0.1).train()
    audio, alpha = make_inputs(length=12)
    targets = random_targets(2, 12)
    for ratio in (1.0, 0.5):
        model.zero_grad()
        out = model(audio, alpha, targets=targets, teacher_forcing_ratio=ratio)
        sum((out[key] - targets[key]).square().mean() for key in KEYS).backward()
        for name, parameter in model.named_parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize(("use_blendshapes", "use_vertex_offsets"), [(True, True), (True, False), (False, True)])
def test_ablation_shapes_ranges_and_parameters(use_blendshapes, use_vertex_offsets):
    model = make_model(use_blendshapes=use_blendshapes, use_vertex_offsets=use_vertex_offsets)
    audio, alpha = make_inputs(length=10)
    targets = random_targets(2, 10)
    names = {name.split(".")[1] for name, _ in model.named_parameters() if name.startswith("branches.")}
    expected = {"beta_lip", "beta_other"} if use_blendshapes else set()
    assert names == expected | ({"lip_offsets"} if use_vertex_offsets else set())  # disabled: not built
    with torch.no_grad():
        for out in (model(audio, alpha, targets=targets), model.generate(audio, alpha)):
            assert out["beta_lip"].shape == (2, 10, 28)
            assert out["beta_other"].shape == (2, 10, 24)
            assert out["lip_offsets"].shape == (2, 10, 40, 3)
            beta = merge_blendshapes(out["beta_lip"], out["beta_other"])
            assert ((beta >= 0) & (beta <= 1)).all()
            assert bool(beta.abs().sum() > 0) == use_blendshapes
            assert bool(out["lip_offsets"].abs().sum() > 0) == use_vertex_offsets
    model.zero_grad()
    out = model(audio, alpha, targets=targets)
    sum(out[key].square().mean() for key in KEYS).backward()
    assert all(parameter.grad is not None for parameter in model.parameters())


@pytest.mark.parametrize(("use_blendshapes", "use_vertex_offsets"), [(True, True), (False, True)])
def test_stacked_branches_equal_each_branch_decoding_alone(use_blendshapes, use_vertex_offsets):
    """The branches run side by side (BranchStack) = each branch's own embed → decoder → output, to 1e-6:
    teacher forced over three context windows, and stepped frame by frame (cache trimmed); gradients reach
    every branch's weights through the stacked ones."""
    window = 6
    model = make_model(max_context=window, use_blendshapes=use_blendshapes, use_vertex_offsets=use_vertex_offsets)
    audio, alpha = make_inputs(length=3 * window)
    targets = random_targets(2, 3 * window)
    with torch.no_grad():
        memory = model.memory(audio, alpha)
        forced, state = model(audio, alpha, targets=targets), model.start(audio, alpha, window)
        alone = {}
        for name, branch in model.branches.items():
            kv = branch.decoder.memory_kv(memory)
            inputs = torch.cat((branch.start(2), branch.embed(model._flat(name, targets[name])[:, :-1])), 1)
            expected = branch.output(branch.decoder(inputs, kv))
            torch.testing.assert_close(model._flat(name, forced[name]), expected, atol=1e-6, rtol=0)
            alone[name] = (kv, DecoderCache(window), None)
        for t in range(3 * window):
            stacked = model.step(state)
            for name, branch in model.branches.items():
                kv, cache, previous = alone[name]
                x = branch.start(2) if previous is None else branch.embed(previous)
                value = branch.output(branch.decoder.step(x, t, kv, cache))
                alone[name] = (kv, cache, value)
                torch.testing.assert_close(model._flat(name, stacked[name]), value, atol=1e-6, rtol=0)
    assert len(state.branches) == len(model.branches)
    model.zero_grad()
    state = model.start(audio, alpha)
    sum(model.step(state)[key].square().sum() for key in KEYS).backward()
    decoders = [branch.decoder for branch in model.branches.values()]
    assert all(decoder.layers[0].ff[0].weight.grad.abs().sum() > 0 for decoder in decoders)


def test_overfits_one_batch():
    """Adam on one fixed batch (B = 2, T = 50), 150 steps: variance-normalised MSE drops ≥ 10× (≈ 25–50×)."""
    model = make_model(num_layers=1, period=25).train()
    audio, alpha = make_inputs(length=50, seed=3)
    generator = torch.Generator().manual_seed(4)

    def smooth(*shape: int) -> torch.Tensor:  # a 9-frame moving average of noise, (2, 50, *shape)
        return torch.randn(2, 58, *shape, generator=generator).unfold(1, 9, 1).mean(-1)

    targets = {
        "beta_lip": torch.sigmoid(2 * smooth(28)),
        "beta_other": torch.sigmoid(2 * smooth(24)),
        "lip_offsets": 0.1 * smooth(40, 3),
    }
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        out = model(audio, alpha, targets=targets)
        loss = sum((out[key] - targets[key]).square().mean() / targets[key].var() for key in KEYS)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


def test_condition_range_conditions_an_unseen_face_like_the_edge_of_the_training_range():
    """Trained (the range recorded) on α / σ_α within ±1, the generator in eval mode drives a face 10 prior standard
    deviations out exactly like the face at the range's edge (+1); a face inside the range keeps its own motion, bit
    for bit equal to a generator without the option, which the far face's motion differs from."""
    ranged, plain = make_model(condition_range=True), make_model()
    plain.load_state_dict({k: v for k, v in ranged.state_dict().items() if not k.startswith("condition_range.")})
    std = builtin_identity_std()
    ranged.train()
    ranged.memory(
        torch.zeros(66, 3, AUDIO_DIM),
        torch.cat(((torch.rand(64, 40) * 2 - 1), torch.ones(1, 40), -torch.ones(1, 40))) * std,
    )
    ranged.eval()
    audio, _ = make_inputs(batch=1)
    edge, far, inside = std[None], 10.0 * std[None], 0.5 * std[None]
    with torch.no_grad():
        assert_outputs_close(ranged.generate(audio, far), plain.generate(audio, edge), atol=0.0)
        assert_outputs_close(ranged.generate(audio, inside), plain.generate(audio, inside), atol=0.0)
        far_plain = plain.generate(audio, far)
    assert not torch.allclose(far_plain["lip_offsets"], plain.generate(audio, edge)["lip_offsets"])
