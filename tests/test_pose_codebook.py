"""Head-pose codebook networks (Eq. 5–7, 12, 13) and pose metrics, on the CPU, without Lightning."""

import math

import pytest
import torch

from talkinghead.metrics.pose import head_pose_diversity, mean_jerk, pose_errors, seed_diversity
from talkinghead.models.attention import periodic_positional_encoding
from talkinghead.models.head_pose import freeze
from talkinghead.models.observed_range import ObservedRange
from talkinghead.models.pose_mapper import PoseMapper, pool_to_codes
from talkinghead.models.pose_vqvae import (
    PoseVQVAE,
    VectorQuantizer,
    band_mask,
    codebook_usage,
    crossfade_weights,
    streaming_decoder,
    window_starts,
)
from tests.helpers import smooth_poses

SMALL_VQVAE = {"d_model": 32, "num_heads": 2, "num_layers": 1, "ff_dim": 64, "code_dim": 16, "num_codes": 32}


def test_quantize_indices_codes_round_trip():
    quantizer = VectorQuantizer(num_codes=16, code_dim=8)
    z = torch.randn(3, 5, 8)
    z_q, indices = quantizer.quantize(z)
    assert indices.shape == (3, 5, 1) and indices.dtype == torch.long
    assert torch.equal(quantizer.codes(indices), z_q)
    # z_q is the nearest entry (Eq. 5), and the forward pass quantises to the same codes.
    brute = torch.cdist(z.reshape(-1, 8), quantizer.codebook).argmin(-1).reshape(3, 5, 1)
    assert torch.equal(indices, brute)
    out = quantizer.eval()(z)
    assert torch.equal(out["indices"], indices) and torch.allclose(out["z_q"], z_q, atol=1e-6)


def test_product_codes_quantize_each_part_with_its_own_codebook():
    """G = 3 groups of 4 values: each part's nearest entry among its own 16 rows; codes() concatenates them."""
    quantizer = VectorQuantizer(num_codes=16, code_dim=12, num_groups=3)
    assert quantizer.codebook.shape == (48, 4)
    z = torch.randn(3, 5, 12)
    z_q, indices = quantizer.quantize(z)
    assert indices.shape == (3, 5, 3) and int(indices.max()) < 16
    for g in range(3):
        rows = quantizer.codebook[16 * g : 16 * (g + 1)]
        brute = torch.cdist(z[..., 4 * g : 4 * (g + 1)].reshape(-1, 4), rows).argmin(-1).reshape(3, 5)
        assert torch.equal(indices[..., g], brute)
        assert torch.equal(z_q[..., 4 * g : 4 * (g + 1)], rows[indices[..., g]])
    expected = (z[0, 0, 4:8] - quantizer.codebook[16:32]).pow(2).sum(-1)
    torch.testing.assert_close(quantizer.distances(z)[0, 0, 1], expected)
    histogram = quantizer.histogram(indices)
    assert histogram.shape == (3, 16) and histogram.sum(1).eq(15).all()
    with pytest.raises(ValueError, match="multiple of num_groups"):
        VectorQuantizer(num_codes=16, code_dim=10, num_groups=3)


@pytest.mark.parametrize("ema", [False, True])
def test_product_codes_restart_from_their_own_group(ema):
    """A dead entry of group g is re-seeded from group g's parts of the batch (never another group's)."""
    torch.manual_seed(0)
    quantizer = VectorQuantizer(num_codes=4, code_dim=4, num_groups=2, ema=ema, restart_after=1).train()
    with torch.no_grad():
        quantizer.codebook[[1, 2, 3, 5, 6, 7]] = 100.0  # only entry 0 of each group is ever chosen
        if ema:
            quantizer.ema_sum.copy_(quantizer.codebook * quantizer.ema_count[:, None])
    z = torch.randn(32, 4) * 0.1
    z[:, 2:] += 5.0  # group 1's parts lie far from group 0's
    quantizer(z)
    for row in (1, 2, 3):
        assert (z[:, :2] == quantizer.codebook[row]).all(-1).any()
    for row in (5, 6, 7):
        assert (z[:, 2:] == quantizer.codebook[row]).all(-1).any()


def test_straight_through_gradient_reaches_the_encoder():
    torch.manual_seed(0)
    vqvae = PoseVQVAE(**SMALL_VQVAE)
    pose = smooth_poses(2, 16)
    out = vqvae(pose)
    vqvae.normalized_error(out["pose"], pose).backward()  # reconstruction term only: no VQ terms
    encoder_grads = [p.grad for p in vqvae.encoder_convs.parameters()] + [vqvae.encoder_out.weight.grad]
    assert all(g is not None and g.abs().sum() > 0 for g in encoder_grads)
    assert vqvae.quantizer.codebook.grad is None  # only the codebook term moves the (non-EMA) codebook


def test_codebook_and_commitment_terms_have_the_right_gradients():
    quantizer = VectorQuantizer(num_codes=8, code_dim=4, commitment_weight=0.5)
    z = torch.randn(10, 4, requires_grad=True)
    out = quantizer(z)
    out["codebook_loss"].backward(retain_graph=True)
    assert z.grad is None and quantizer.codebook.grad.abs().sum() > 0
    quantizer.codebook.grad = None
    out["commitment_loss"].backward()
    assert quantizer.codebook.grad is None and z.grad.abs().sum() > 0
    expected = 0.5 * (z.detach() - quantizer.codes(out["indices"])).pow(2).mean()
    assert torch.allclose(out["commitment_loss"], expected)


@pytest.mark.parametrize("ema", [False, True])
def test_dead_code_restart_reseeds_unused_codes(ema):
    torch.manual_seed(0)
    quantizer = VectorQuantizer(num_codes=8, code_dim=4, ema=ema, restart_after=3).train()
    with torch.no_grad():
        quantizer.codebook[1:] = 100.0  # far away: only code 0 is ever chosen for inputs near 0
        if ema:
            quantizer.ema_sum.copy_(quantizer.codebook * quantizer.ema_count[:, None])
    z = torch.randn(64, 4) * 0.1
    for step in range(2):
        quantizer(z)
        assert quantizer.steps_unused[1:].eq(step + 1).all() and quantizer.steps_unused[0] == 0
    quantizer(z)  # third unused step: codes 1..7 are re-seeded from rows of z
    assert quantizer.steps_unused.eq(0).all()
    for code in quantizer.codebook[1:]:
        assert (z == code).all(-1).any(), "a restarted code must be one of the batch's encoder outputs"
    assert quantizer.usage(quantizer.quantize(z)[1])[0] > 1 / 8
    quantizer.eval()(z * 0 + 100.0)  # eval: no updates
    assert quantizer.steps_unused.eq(0).all()


def test_codebook_usage_and_perplexity():
    usage, perplexity = codebook_usage(torch.tensor([5.0, 5.0, 0.0, 0.0]))
    assert usage == 0.5 and torch.isclose(perplexity, torch.tensor(2.0))
    usage, perplexity = codebook_usage(torch.tensor([3.0, 0.0, 0.0, 0.0]))
    assert usage == 0.25 and torch.isclose(perplexity, torch.tensor(1.0))
    # two groups: 3 of 8 codes used; perplexities 2 and 1 average to 1.5
    usage, perplexity = codebook_usage(torch.tensor([[5.0, 5.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0]]))
    assert usage == 3 / 8 and torch.isclose(perplexity, torch.tensor(1.5))


@pytest.mark.parametrize("length", [16, 18])
def test_vqvae_shapes_any_length(length):
    vqvae = PoseVQVAE(**SMALL_VQVAE, downsample=4).eval()
    out = vqvae(smooth_poses(2, length))
    assert out["pose"].shape == (2, length, 6)
    assert out["z"].shape == (2, math.ceil(length / 4), 16) and out["indices"].shape == (2, math.ceil(length / 4), 1)


def test_windowed_decode_keeps_short_sequences_and_crossfades_long_ones():
    """max_context = 16 frames (4 codes): up to 4 codes decode bit-identically in one pass; longer sequences are
    decoded in windows of 4 codes (hop 2), each as in training, and cross-faded over the overlaps."""
    torch.manual_seed(0)
    whole = PoseVQVAE(**SMALL_VQVAE, downsample=4).eval()
    windowed = PoseVQVAE(**SMALL_VQVAE, downsample=4, max_context=16).eval()
    windowed.load_state_dict(whole.state_dict())
    codes = torch.randn(2, 11, 16)
    with torch.no_grad():
        assert torch.equal(windowed.decode(codes[:, :4], 14), whole.decode(codes[:, :4], 14))
        out = windowed.decode(codes, 42)
        first, last = whole.decode(codes[:, :4]), whole.decode(codes[:, -4:])
        pieces = torch.stack([whole.decode(codes[:, s : s + 4]) for s in (0, 2, 4, 6, 7)])  # (5, B, 16, 6)
    assert out.shape == (2, 42, 6)
    torch.testing.assert_close(out[:, :8], first[:, :8])  # only the first window covers frames 0–7
    torch.testing.assert_close(out[:, 40:], last[:, 12:14])  # only the last window covers frames 40–43
    lows, highs = pieces.amin(0).amin(1), pieces.amax(0).amax(1)  # per channel, over windows and frames
    assert ((out >= lows[:, None] - 1e-6) & (out <= highs[:, None] + 1e-6)).all()  # convex combinations
    assert window_starts(11, 4, 2) == [0, 2, 4, 6, 7] and window_starts(3, 4, 2) == [0]
    torch.testing.assert_close(crossfade_weights(6, 2, False, True), torch.tensor([0.25, 0.75, 1, 1, 1, 1]))
    with pytest.raises(ValueError, match="max_context"):
        PoseVQVAE(**SMALL_VQVAE, downsample=4, max_context=6)


def windowed_vqvae(causal: bool, causal_upsampling: bool) -> PoseVQVAE:
    """Two layers, 4 frames per code, a decoder window of 4 codes (16 frames), in eval mode."""
    return PoseVQVAE(
        **{**SMALL_VQVAE, "num_layers": 2},
        downsample=4,
        max_context=16,
        causal=causal,
        causal_upsampling=causal_upsampling,
    ).eval()


@pytest.mark.parametrize(("causal_upsampling", "reach"), [(False, (1, 1)), (True, (2, 0))])
def test_causal_decoder_output_waits_only_for_the_convolutions(causal_upsampling, reach):
    """causal=True, max_context = 16 frames (4 codes), two layers: a code step changes no frame before those of
    the code ``right`` steps earlier (the centred kernels: one step; ``causal_upsampling``: none, its own frames
    are the first to change), ``conv_reach`` equals the reach read off the gradient, and the chunked
    transformer equals one band-masked pass over the whole sequence."""
    torch.manual_seed(0)
    vqvae = windowed_vqvae(causal=True, causal_upsampling=causal_upsampling)
    assert vqvae.transformer_reach == 6
    h = torch.randn(1, 16, 32, requires_grad=True)
    vqvae.upsample(h)[:, 32:36].sum().backward()  # the frames of step 8
    touched = h.grad[0].abs().sum(-1).nonzero().flatten()
    assert vqvae.conv_reach() == (8 - int(touched.min()), int(touched.max()) - 8) == reach
    codes = torch.randn(2, 13, 16)
    changed = codes.clone()
    changed[:, 7] += 1.0
    with torch.no_grad():
        before, after = vqvae.decode(codes, 50), vqvae.decode(changed, 50)
        whole = vqvae.decoder_transformer(
            vqvae.decoder_in(codes) + periodic_positional_encoding(torch.arange(13), 32, vqvae.period),
            mask=band_mask(13, 4),
        )
        torch.testing.assert_close(vqvae.transform(codes), whole, atol=1e-5, rtol=0)
    first_changed = (7 - reach[1]) * 4
    assert before.shape == (2, 50, 6)
    torch.testing.assert_close(before[:, :first_changed], after[:, :first_changed], atol=1e-6, rtol=0)
    own = slice(first_changed, first_changed + 4)
    assert (before[:, own] - after[:, own]).abs().amax() > 1e-3
    with pytest.raises(ValueError, match="causal decoding needs max_context"):
        PoseVQVAE(**SMALL_VQVAE, causal=True)
    with pytest.raises(ValueError, match="causal_upsampling needs causal=True"):
        PoseVQVAE(**SMALL_VQVAE, max_context=16, causal_upsampling=True)


@pytest.mark.parametrize(("causal", "causal_upsampling"), [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("chunk", [1, 3, 7])
def test_streamed_pose_decoding_equals_the_offline_decode(causal, causal_upsampling, chunk):
    """23 codes (90 frames) pushed ``chunk`` at a time equal ``decode`` of the whole sequence; a causal decoder
    emits each code's frames once the code after it has arrived (with ``causal_upsampling``: once the code
    itself has), the windowed one about a window later."""
    torch.manual_seed(1)
    vqvae = windowed_vqvae(causal=causal, causal_upsampling=causal_upsampling)
    codes = torch.randn(1, 23, 16)
    decoder = streaming_decoder(vqvae)
    parts, emitted = [], []
    with torch.no_grad():
        offline = vqvae.decode(codes, 90)
        for start in range(0, 23, chunk):
            pushed = min(start + chunk, 23)
            parts.append(decoder.push(codes[:, start:pushed], min_frames=min(pushed * 4, 90)))
            emitted.append((pushed, sum(part.shape[1] for part in parts)))
        parts.append(decoder.close(90))
    torch.testing.assert_close(torch.cat(parts, dim=1), offline, atol=1e-5, rtol=0)
    if causal:
        later = 0 if causal_upsampling else 1
        assert decoder.lookahead_codes == later
        assert all(frames == min((pushed - later) * 4, 90) for pushed, frames in emitted)
        assert decoder.buffer_sizes()["pose codes"] == vqvae.transformer_reach
    else:
        assert decoder.lookahead_codes == 3
        assert all(frames <= max(0, pushed - 3) * 4 for pushed, frames in emitted)


OVERFIT_STEPS = 200


def test_vqvae_overfits_one_batch():
    """Eq. 12 on one fixed batch: the reconstruction term falls by ≥ 10× within OVERFIT_STEPS Adam steps."""
    torch.manual_seed(0)
    vqvae = PoseVQVAE(**SMALL_VQVAE, restart_after=20).train()
    pose = smooth_poses(8, 32)
    optimizer = torch.optim.Adam(vqvae.parameters(), lr=3e-3)
    first = None
    for _ in range(OVERFIT_STEPS):
        optimizer.zero_grad()
        out = vqvae(pose)
        reconstruction = vqvae.normalized_error(out["pose"], pose)
        (reconstruction + out["codebook_loss"] + out["commitment_loss"]).backward()
        optimizer.step()
        first = reconstruction.item() if first is None else first
    vqvae.eval()
    with torch.no_grad():
        final = vqvae.normalized_error(vqvae(pose)["pose"], pose).item()
    assert final < first / 10, (first, final)


def _mapper(vqvae: PoseVQVAE, **kwargs) -> PoseMapper:
    defaults = dict(
        audio_dim=12,
        code_dim=vqvae.quantizer.code_dim,
        downsample=vqvae.downsample,
        d_model=32,
        num_heads=2,
        num_layers=1,
        ff_dim=64,
        dropout=0.1,
    )
    return PoseMapper(**{**defaults, **kwargs})


def _mapper_inputs(batch: int = 2, length: int = 16):
    generator = torch.Generator().manual_seed(1)
    audio = torch.randn(batch, length, 12, generator=generator)
    alpha = torch.randn(batch, 40, generator=generator)
    initial = torch.randn(batch, 6, generator=generator) * 0.1
    return audio, alpha, initial


def test_mapper_training_leaves_the_frozen_codebook_and_decoder_bit_exact():
    torch.manual_seed(0)
    vqvae = freeze(PoseVQVAE(**SMALL_VQVAE, dropout=0.1))
    mapper = _mapper(vqvae)
    container = torch.nn.ModuleDict({"vqvae": vqvae, "mapper": mapper})
    container.train()
    assert not vqvae.training and all(not m.training for m in vqvae.modules())
    assert mapper.training
    vqvae.train()
    assert not vqvae.training
    before = {name: t.clone() for name, t in vqvae.state_dict().items()}
    trainable = [p for p in container.parameters() if p.requires_grad]
    assert trainable and not any(p.requires_grad for p in vqvae.parameters())
    optimizer = torch.optim.Adam(trainable, lr=1e-2)
    audio, alpha, initial = _mapper_inputs()
    pose = smooth_poses(2, 16)
    for _ in range(3):
        optimizer.zero_grad()
        with torch.no_grad():
            codes, _ = vqvae.quantizer.quantize(vqvae.encode(pose))
        z_hat = mapper(audio, alpha, initial, codes)
        quantized, _ = vqvae.quantizer.quantize(z_hat)
        decoded = vqvae.decode(z_hat + (quantized - z_hat).detach(), 16)
        loss = vqvae.normalized_error(decoded, pose) + (z_hat - codes).pow(2).mean()
        loss.backward()
        optimizer.step()
    assert mapper.head.weight.grad.abs().sum() > 0
    for name, tensor in vqvae.state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_mapper_teacher_forcing_is_causal():
    torch.manual_seed(0)
    vqvae = PoseVQVAE(**SMALL_VQVAE).eval()
    mapper = _mapper(vqvae, audio_window=(0, 0)).eval()
    audio, alpha, initial = _mapper_inputs(length=16)
    codes = torch.randn(2, 4, 16)
    changed = codes.clone()
    changed[:, 2:] += 1.0
    with torch.no_grad():
        first, second = mapper(audio, alpha, initial, codes), mapper(audio, alpha, initial, changed)
    assert torch.allclose(first[:, :3], second[:, :3], atol=1e-6)  # step n sees codes < n
    assert not torch.allclose(first[:, 3], second[:, 3])


def _generate(mapper, vqvae, temperature, seed=None, top_k=None):
    audio, alpha, initial = _mapper_inputs(length=32)
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return mapper.generate(
        audio, alpha, initial, vqvae.quantizer, temperature=temperature, top_k=top_k, generator=generator
    )


def test_sampling_seeds_and_temperature_zero():
    torch.manual_seed(0)
    vqvae = PoseVQVAE(**SMALL_VQVAE).eval()
    mapper = _mapper(vqvae).eval()
    codes_a, indices_a = _generate(mapper, vqvae, 1.0, seed=7, top_k=16)
    codes_b, indices_b = _generate(mapper, vqvae, 1.0, seed=7, top_k=16)
    _, indices_c = _generate(mapper, vqvae, 1.0, seed=8, top_k=16)
    assert indices_a.shape == (2, 8, 1) and codes_a.shape == (2, 8, 16)
    assert torch.equal(indices_a, indices_b) and torch.equal(codes_a, codes_b)
    assert not torch.equal(indices_a, indices_c)
    _, greedy_a = _generate(mapper, vqvae, 0.0, seed=1)
    _, greedy_b = _generate(mapper, vqvae, 0.0, seed=2)
    assert torch.equal(greedy_a, greedy_b)
    # temperature 0 is q(ẑ): the greedy codes are the codebook's nearest entries to each step's ẑ.
    z_hat = torch.randn(5, 16)
    assert torch.equal(PoseMapper.sample(z_hat, vqvae.quantizer, 0.0), vqvae.quantizer.quantize(z_hat)[1])


def test_product_code_sampling_draws_each_group_from_its_own_distribution():
    """4000 draws at temperature 1 from one ẑ: each group's code frequencies match softmax(−dist²) of its own
    part within 0.03 (the draws are independent across groups given ẑ)."""
    torch.manual_seed(0)
    quantizer = VectorQuantizer(num_codes=4, code_dim=4, num_groups=2)
    z_hat = torch.randn(1, 4)
    expected = torch.softmax(-quantizer.distances(z_hat)[0], dim=-1)  # (2, 4)
    draws = PoseMapper.sample(z_hat.expand(4000, -1), quantizer, 1.0, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (4000, 2)
    for g in range(2):
        frequencies = torch.bincount(draws[:, g], minlength=4) / 4000
        torch.testing.assert_close(frequencies, expected[g], atol=0.03, rtol=0)


@pytest.mark.parametrize("num_groups", [1, 4])
def test_generation_matches_teacher_forcing_on_its_own_codes(num_groups):
    torch.manual_seed(0)
    vqvae = PoseVQVAE(**SMALL_VQVAE, num_groups=num_groups).eval()
    mapper = _mapper(vqvae).eval()
    audio, alpha, initial = _mapper_inputs(length=32)
    codes, indices = mapper.generate(audio, alpha, initial, vqvae.quantizer)
    with torch.no_grad():
        z_hat = mapper(audio, alpha, initial, codes)
    assert torch.equal(vqvae.quantizer.quantize(z_hat)[1], indices)


@pytest.mark.parametrize(("absolute_pose", "use_initial_pose"), [(True, True), (False, False)])
def test_mapper_ablations_build_and_run(absolute_pose, use_initial_pose):
    vqvae = PoseVQVAE(**SMALL_VQVAE).eval()
    mapper = _mapper(vqvae, absolute_pose=absolute_pose, use_initial_pose=use_initial_pose).eval()
    assert (mapper.initial_pose is None) == (not use_initial_pose)
    audio, alpha, initial = _mapper_inputs()
    codes, _ = mapper.generate(audio, alpha, initial, vqvae.quantizer)
    if not use_initial_pose:  # P⁰ is not a condition: changing it changes nothing
        other, _ = mapper.generate(audio, alpha, initial + 1.0, vqvae.quantizer)
        assert torch.equal(codes, other)


def test_condition_noise_perturbs_the_normalised_conditions_in_training_only():
    """σ = 0.5: in training, the style MLP and the P⁰ embedding see α / σ_α and P⁰ / pose_scale plus noise whose
    mean is within 0.02 of 0 and standard deviation within 0.02 of 0.5 (4 000 × 40 and × 6 draws); in eval mode
    the conditions equal those of the same weights without noise, bit for bit."""
    torch.manual_seed(0)
    vqvae = PoseVQVAE(**SMALL_VQVAE).eval()
    noisy, plain = _mapper(vqvae, condition_noise=0.5), _mapper(vqvae)
    plain.load_state_dict(noisy.state_dict())
    _, alpha, initial = _mapper_inputs()
    noisy.eval()
    plain.eval()
    with torch.no_grad():
        assert torch.equal(noisy.condition(alpha, initial), plain.condition(alpha, initial))
    seen = {}
    noisy.style[0].register_forward_hook(lambda module, args, out: seen.update(style=args[0]))
    noisy.initial_pose.register_forward_hook(lambda module, args, out: seen.update(pose=args[0]))
    noisy.train()
    alpha, initial = torch.randn(4000, 40), torch.randn(4000, 6) * 0.1
    with torch.no_grad():
        noisy.condition(alpha, initial)
    for noise in (seen["style"] - alpha / noisy.identity_std, seen["pose"] - initial / noisy.pose_scale):
        assert abs(noise.mean().item()) < 0.02 and abs(noise.std().item() - 0.5) < 0.02
    with pytest.raises(ValueError, match="condition_noise"):
        _mapper(vqvae, condition_noise=-1.0)


def test_observed_range_widens_in_training_and_clamps_outside_it():
    """Training batches [0, 1] and [−2, 3] (per dimension) leave the range [−2, 3]; in eval mode 5 → 3, −4 → −2 and
    values inside pass bit for bit; a dimension never observed (a fresh range) clamps nothing."""
    observed = ObservedRange(2)
    assert torch.equal(observed.eval()(torch.tensor([[9.0, -9.0]])), torch.tensor([[9.0, -9.0]]))
    observed.train()
    first, second = torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([[-2.0, 3.0], [3.0, -2.0]])
    assert torch.equal(observed(first), first) and torch.equal(observed(second), second)
    assert observed.low.tolist() == [-2.0, -2.0] and observed.high.tolist() == [3.0, 3.0]
    observed.eval()
    values = torch.tensor([[5.0, -4.0], [0.25, 2.5]])
    assert observed(values).tolist() == [[3.0, -2.0], [0.25, 2.5]]
    observed.widen(torch.tensor([-1.0, -5.0]), torch.tensor([4.0, 0.0]))  # another process' range
    assert observed.low.tolist() == [-2.0, -5.0] and observed.high.tolist() == [4.0, 3.0]


def test_condition_range_conditions_an_unseen_face_like_the_edge_of_the_training_range():
    """Trained (the range recorded) on α / σ_α within ±1 and P⁰ / pose_scale within ±2, the mapper in eval mode gives
    a face 10 prior standard deviations out, at a P⁰ 5 units out, exactly the condition of the range's edge (+1, +2);
    a face inside the range keeps its own condition, bit for bit equal to a mapper without the option."""
    torch.manual_seed(0)
    vqvae = PoseVQVAE(**SMALL_VQVAE).eval()
    ranged, plain = _mapper(vqvae, condition_range=True), _mapper(vqvae)
    plain.load_state_dict({k: v for k, v in ranged.state_dict().items() if not k.startswith("condition_range.")})
    ranged.train()
    ranged.condition(torch.rand(64, 40) * 2 - 1, (torch.rand(64, 6) * 4 - 2) * ranged.pose_scale)
    ranged.condition(torch.tensor([[1.0] * 40, [-1.0] * 40]), torch.tensor([[2.0] * 6, [-2.0] * 6]) * ranged.pose_scale)
    ranged.eval()
    plain.eval()
    edge_alpha, edge_pose = torch.ones(1, 40), 2.0 * ranged.pose_scale[None]
    far_alpha, far_pose = 10.0 * torch.ones(1, 40), 5.0 * ranged.pose_scale[None]
    inside_alpha, inside_pose = torch.full((1, 40), 0.5), -ranged.pose_scale[None]
    with torch.no_grad():
        torch.testing.assert_close(ranged.condition(far_alpha, far_pose), plain.condition(edge_alpha, edge_pose))
        assert torch.equal(ranged.condition(inside_alpha, inside_pose), plain.condition(inside_alpha, inside_pose))
        assert not torch.allclose(plain.condition(far_alpha, far_pose), plain.condition(edge_alpha, edge_pose))


def test_pool_to_codes():
    features = torch.arange(10.0).reshape(1, 10, 1)
    pooled = pool_to_codes(features, 4)
    assert torch.equal(pooled.flatten(), torch.tensor([1.5, 5.5, 8.75]))  # last step: 8, 9, 9, 9


def test_hpd_matches_the_closed_form():
    """‖angles‖ (degrees) alternating between a and b over time has population variance ((a − b) / 2)²."""
    a, b = 2.0, 6.0
    direction = torch.tensor([1.0, 2.0, 2.0]) / 3.0  # unit vector
    norms = torch.tensor([a, b] * 10)
    angles = torch.deg2rad(norms[:, None] * direction)
    pose = torch.cat((angles, torch.randn(20, 3)), dim=-1)  # translation does not enter HPD
    assert torch.isclose(head_pose_diversity(pose), torch.tensor(((a - b) / 2) ** 2), rtol=1e-4)
    assert head_pose_diversity(pose[None].expand(3, -1, -1)).shape == (3,)
    constant = torch.cat((angles[:1].expand(20, -1), torch.zeros(20, 3)), dim=-1)
    assert head_pose_diversity(constant).abs() < 1e-8


def test_pose_errors_diversity_and_jerk():
    pose = torch.zeros(1, 8, 6)
    shifted = pose.clone()
    shifted[..., 0] = math.radians(3.0)
    shifted[..., 3:5] = torch.tensor([3.0, 4.0])
    angle, translation = pose_errors(shifted, pose)
    assert torch.allclose(angle, torch.tensor([3.0])) and torch.allclose(translation, torch.tensor([5.0]))
    angle, translation = seed_diversity(torch.stack((pose, shifted, pose)))  # pairs: 1 of 3 identical
    assert torch.allclose(angle, torch.tensor([2.0])) and torch.allclose(translation, torch.tensor([10 / 3]))
    ramp = torch.zeros(1, 10, 6)
    ramp[..., 3] = torch.arange(10.0) ** 3  # Δ³ of t³ is 6
    assert torch.allclose(mean_jerk(ramp)[1], torch.tensor([6.0])) and mean_jerk(ramp)[0].abs().max() == 0
