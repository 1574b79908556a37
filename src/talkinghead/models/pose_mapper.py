"""Learnable Head Pose Codebook, mapping phase: Φ_map (VividTalk §3.2, Eq. 7; trained with Eq. 13).

``P̂_r = D(q(Φ_map(A, s, P⁰)))``: Φ_map is autoregressive over latent steps, one step per code (f frames).

* Audio: the features A (B, T, C) at video fps are average-pooled to the code rate (f frames per step; a
  partial last step is padded by repeating the last frame), then encoded by the facial-motion
  :class:`~talkinghead.models.facial_motion.AudioProjection` (Linear + residual conv + LayerNorm).
* Conditions: the style embedding ``s = MLP(α / σ_α)`` and, unless ``use_initial_pose=False``, the initial
  pose embedding ``Linear(P⁰ / pose_scale)`` are **added to the memory** (every audio step, like z_style in
  the facial-motion generator) **and to the learned start token** (so the first step sees them through
  self-attention too).
* Decoder: a :class:`~talkinghead.models.attention.CausalDecoder` (biased causal self-attention over the
  previous steps' quantised codes, aligned cross-modal attention to the memory; periods and windows are in
  code steps) → ``Linear`` → Ẑ (B, N, d_code). Step n's input is the code ``Z_q[n−1]`` (teacher forcing with
  the ground-truth codes during training, the chosen code at inference).

Condition noise (a departure for small corpora; ``condition_noise = 0`` is the paper): in training mode, Gaussian
noise of standard deviation ``condition_noise`` is added to the normalised conditions ``α / σ_α`` and
``P⁰ / pose_scale``. Trained on a few dozen identities, the mapper otherwise learns a lookup from them to an offset
of the whole trajectory, which a new face meets as a turn of the head (trained on the embedded corpus and driven
by its speech, three real portraits turn by 6° of pitch and 9° of yaw on average, by 2° and 5–8° with
``condition_noise = 1``); with the noise, the output varies smoothly with the conditions, so an unseen face moves
more like the training faces near it.

Condition range (a departure for small corpora; ``condition_range = False`` is the paper): the per-dimension range
of the normalised conditions ``α / σ_α`` and ``P⁰ / pose_scale`` met in training is recorded
(:class:`ObservedRange`, before the noise), and outside training the conditions are clamped to it. A real face's
fitted α lies 2–3 times further from the mean face than the embedded corpus' identities (its largest coordinates
9–14 prior standard deviations, the corpus' at most 3.3) and a real portrait's P⁰ can lie outside the corpus' poses;
the mapper would extrapolate its condition lookup to them and tilt the whole trajectory. Clamped, an unseen face is
conditioned like the nearest edge of what training covered.

Long utterances (a departure: the paper does not discuss them): ``max_context`` (= the training window in code
steps in the configs) bounds the decoder's context, and the frozen VQ-VAE decodes long code sequences in
overlapping windows of its own training length (:meth:`~talkinghead.models.pose_vqvae.PoseVQVAE.decode`).

Sampling (:meth:`PoseMapper.generate`): the logits over the K codes are ``−‖ẑ − z_k‖² / temperature``,
optionally restricted to the ``top_k`` nearest, drawn with a ``torch.Generator`` (same seed → same sequence);
``temperature = 0`` is ``q(ẑ)``, the nearest code (deterministic, Eq. 5). With a product codebook (G groups)
each group's code is drawn from its own logits, independently given the decoder state (which has seen every
group's previous codes).

Ablations (Table 3): ``absolute_pose`` (the codes describe P rather than P − P⁰; the codebook must have been
trained the same way) and ``use_initial_pose=False`` (no P⁰ condition).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from talkinghead.face.pose import POSE_DIM
from talkinghead.models.attention import CausalDecoder, DecoderCache, concat_memory_kv
from talkinghead.models.blocks import AudioProjection
from talkinghead.models.observed_range import ObservedRange
from talkinghead.models.pose_vqvae import DEFAULT_POSE_SCALE, VectorQuantizer


def pool_to_codes(features: torch.Tensor, factor: int) -> torch.Tensor:
    """Average-pool (B, T, C) over time to (B, ceil(T / factor), C), padding by repeating the last frame."""
    length = features.shape[1]
    pad = -(-length // factor) * factor - length
    if pad:
        features = torch.cat((features, features[:, -1:].expand(-1, pad, -1)), dim=1)
    return F.avg_pool1d(features.transpose(1, 2), factor).transpose(1, 2)


@dataclass
class MapperState:
    """Incremental-decoding state of :meth:`PoseMapper.start` / :meth:`~PoseMapper.step`."""

    cond: torch.Tensor  # (B, D) style (+ P⁰) condition
    memory_kv: list | None  # per-layer cross-attention K/V of the memory steps known so far
    memory_start: int  # the step of memory_kv's first entry (streaming trims the past)
    length: int  # memory steps known so far
    cache: DecoderCache
    x: torch.Tensor  # (B, 1, D) the next step's input: the start token, then the last code's embedding
    position: int


class PoseMapper(nn.Module):
    """Φ_map of Eq. 7: (A, α, P⁰) → Ẑ (B, N, d_code). Pure ``nn.Module``; the frozen codebook is passed in.

    Args:
        audio_dim: C of A (at video fps).
        code_dim: d_code of the codebook.
        downsample: f, frames per code (must match the codebook's VQ-VAE).
        identity_dim, identity_std: α's size and the prior std used to normalise it (None = 1).
        d_model, num_heads, num_layers, ff_dim, dropout: decoder sizes.
        period: PPE / mask period in code steps.
        audio_window: (past, future) code steps of the cross-attention alignment mask.
        max_context: context of the decoder in code steps, self-attention and audio alike (a sliding window with a
            bounded key/value cache, :mod:`~talkinghead.models.attention`); the configs set it to the training
            window ``data.window / downsample``. None = every past step (unbounded, for older checkpoints).
        pose_scale: normalisation of P⁰ (radians, cm), as in the VQ-VAE.
        absolute_pose, use_initial_pose: Table 3 ablations (module docstring).
        condition_noise: standard deviation of the Gaussian noise added in training mode to the normalised
            conditions ``α / σ_α`` and ``P⁰ / pose_scale`` (module docstring); 0 = the paper.
        condition_range: record the range of the normalised conditions in training and clamp them to it outside
            training (:class:`ObservedRange`, module docstring); False = the paper.
    """

    def __init__(
        self,
        audio_dim: int,
        code_dim: int = 64,
        downsample: int = 4,
        identity_dim: int = 40,
        identity_std: Sequence[float] | torch.Tensor | None = None,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int | None = None,
        dropout: float = 0.1,
        period: int = 8,
        audio_window: Sequence[int] = (1, 1),
        max_context: int | None = None,
        audio_conv_kernel: int = 3,
        pose_scale: Sequence[float] = DEFAULT_POSE_SCALE,
        absolute_pose: bool = False,
        use_initial_pose: bool = True,
        condition_noise: float = 0.0,
        condition_range: bool = False,
    ):
        super().__init__()
        if condition_noise < 0:
            raise ValueError(f"condition_noise must be ≥ 0, got {condition_noise}")
        self.condition_noise = condition_noise
        self.downsample = downsample
        self.absolute_pose = absolute_pose
        self.use_initial_pose = use_initial_pose
        self.max_context = max_context
        std = torch.ones(identity_dim) if identity_std is None else torch.as_tensor(identity_std, dtype=torch.float32)
        self.register_buffer("identity_std", std.clone())
        self.register_buffer("pose_scale", torch.as_tensor(pose_scale, dtype=torch.float32).clone())
        self.audio_encoder = AudioProjection(audio_dim, d_model, audio_conv_kernel, dropout)
        self.style = nn.Sequential(nn.Linear(identity_dim, d_model), nn.GELU(), nn.Linear(d_model, d_model))
        self.initial_pose = nn.Linear(POSE_DIM, d_model) if use_initial_pose else None
        self.condition_range = ObservedRange(identity_dim + POSE_DIM) if condition_range else None
        self.input_proj = nn.Linear(code_dim, d_model)
        self.start_token = nn.Parameter(torch.randn(d_model) * 0.02)
        self.decoder = CausalDecoder(
            d_model, num_heads, num_layers, ff_dim or 4 * d_model, dropout, period, tuple(audio_window), max_context
        )
        self.head = nn.Linear(d_model, code_dim)

    def condition(self, alpha: torch.Tensor, initial_pose: torch.Tensor) -> torch.Tensor:
        """s (+ the P⁰ embedding): (B, K), (B, 6) → (B, D)."""
        alpha, initial_pose = alpha / self.identity_std, initial_pose / self.pose_scale
        if self.condition_range is not None:
            both = self.condition_range(torch.cat((alpha, initial_pose), dim=-1))
            alpha, initial_pose = both.split((alpha.shape[-1], POSE_DIM), dim=-1)
        cond = self.style(self._noisy(alpha))
        if self.initial_pose is not None:
            cond = cond + self.initial_pose(self._noisy(initial_pose))
        return cond

    def _noisy(self, normalised: torch.Tensor) -> torch.Tensor:
        """A normalised condition, plus N(0, condition_noise²) noise in training mode."""
        if not (self.training and self.condition_noise > 0):
            return normalised
        return normalised + self.condition_noise * torch.randn_like(normalised)

    def memory(self, audio_features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """A (B, T, C) at video fps → memory (B, ceil(T/f), D) at the code rate, plus the condition."""
        return self.code_memory(pool_to_codes(audio_features, self.downsample), cond)

    def code_memory(self, pooled: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Audio already pooled to the code rate (B, N, C) → memory (B, N, D), plus the condition."""
        return self.audio_encoder(pooled) + cond[:, None]

    def forward(
        self, audio_features: torch.Tensor, alpha: torch.Tensor, initial_pose: torch.Tensor, codes: torch.Tensor
    ) -> torch.Tensor:
        """Teacher-forced Ẑ: the ground-truth codes Z_q (B, N, d_code) → Ẑ (B, N, d_code); step n sees Z_q[< n]."""
        cond = self.condition(alpha, initial_pose)
        memory_kv = self.decoder.memory_kv(self.memory(audio_features, cond))
        start = (self.start_token + cond)[:, None]
        inputs = torch.cat((start, self.input_proj(codes[:, :-1])), dim=1)
        return self.head(self.decoder(inputs, memory_kv))

    @torch.no_grad()
    def generate(
        self,
        audio_features: torch.Tensor,
        alpha: torch.Tensor,
        initial_pose: torch.Tensor,
        codebook: VectorQuantizer,
        num_steps: int | None = None,
        temperature: float = 0.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Autoregressive decoding with a KV cache → (Z_q (B, N, d_code), indices (B, N, G)).

        ``num_steps`` defaults to ceil(T / f). Sampling as in the module docstring.
        """
        state = self.start(alpha, initial_pose)
        self.extend(state, self.memory(audio_features, state.cond))
        num_steps = state.length if num_steps is None else num_steps
        steps = [self.step(state, codebook, temperature, top_k, generator) for _ in range(num_steps)]
        return torch.stack([z_q for z_q, _ in steps], dim=1), torch.stack([index for _, index in steps], dim=1)

    def start(self, alpha: torch.Tensor, initial_pose: torch.Tensor) -> MapperState:
        """Begin incremental decoding: the condition and the start token, no memory yet (:meth:`extend`)."""
        cond = self.condition(alpha, initial_pose)
        return MapperState(cond, None, 0, 0, DecoderCache(self.max_context), (self.start_token + cond)[:, None], 0)

    def extend(self, state: MapperState, memory: torch.Tensor) -> None:
        """Append the next code steps of the memory (B, n, D) (:meth:`memory` / :meth:`code_memory`)."""
        new = self.decoder.memory_kv(memory)
        state.memory_kv = new if state.memory_kv is None else concat_memory_kv(state.memory_kv, new)
        state.length += memory.shape[1]

    def trim(self, state: MapperState) -> None:
        """Drop the memory steps before ``position − w_past``: no later step's alignment window reaches them."""
        drop = max(0, state.position - self.decoder.audio_window[0]) - state.memory_start
        if drop > 0 and state.memory_kv is not None:
            state.memory_kv = [(k[:, :, drop:], v[:, :, drop:]) for k, v in state.memory_kv]
            state.memory_start += drop

    def step(
        self,
        state: MapperState,
        codebook: VectorQuantizer,
        temperature: float = 0.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample code step ``state.position`` → (z_q (B, d_code), index (B, G)); the next input is its embedding."""
        hidden = self.decoder.step(state.x, state.position, state.memory_kv, state.cache, state.memory_start)
        z_hat = self.head(hidden)[:, 0]  # (B, d_code)
        index = self.sample(z_hat, codebook, temperature, top_k, generator)
        z_q = codebook.codes(index)
        state.x = self.input_proj(z_q)[:, None]
        state.position += 1
        return z_q, index

    @staticmethod
    def sample(
        z_hat: torch.Tensor,
        codebook: VectorQuantizer,
        temperature: float = 0.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """ẑ (B, d) → code indices (B, G): nearest for temperature 0, else softmax(−dist² / τ) over the top-k,
        each group of a product codebook drawn on its own."""
        distances = codebook.distances(z_hat)  # (B, G, K)
        if temperature <= 0:
            return distances.argmin(-1)
        logits = -distances / temperature
        if top_k is not None and top_k < logits.shape[-1]:
            threshold = logits.topk(top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < threshold, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        return torch.multinomial(probs.flatten(0, 1), 1, generator=generator).view(probs.shape[:2])
