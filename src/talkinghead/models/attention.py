"""FaceFormer-style attention pieces for the autoregressive motion decoders (VividTalk §3.2, Eq. 2, 3).

VividTalk's facial-motion branches are "transformer-based" and take "the learned past motions ... as the
input of the network when predicting the current motion" (Eq. 2, 3); the paper builds on FaceFormer, whose
decoder ingredients are reproduced here:

* a periodic positional encoding (PPE): sinusoids of ``t mod p`` (period ``p`` frames), so there is no
  maximum length;
* a biased causal self-attention mask: ALiBi-like per-head slopes ``m_h`` and the bias
  ``−floor((i − j) / p) · m_h`` for ``j ≤ i`` (``−inf`` for ``j > i``), computed for any length;
* an alignment mask for cross-attention to the audio memory ``A``: motion frame ``t`` attends audio frames
  in ``[t − w_past, t + w_future]``. Audio is known in full at inference, so a small look-ahead is
  allowed (it helps coarticulation);
* a pre-norm decoder layer (biased causal self-attention → aligned cross-attention → FFN) on
  :func:`torch.nn.functional.scaled_dot_product_attention` with explicit float masks, with a key/value
  cache for incremental decoding.

Sliding window (a departure: the paper does not discuss long-utterance inference). The decoders are trained on
windows of W frames (``data.window``) but decode whole utterances; ``max_context = c`` (set to W in the configs)
bounds what inference sees so that it stays inside what training saw:

* self-attention sees the last ``c`` frames (``i − c < j ≤ i``), in the teacher-forced mask and in the
  key/value cache alike, which keeps ``c − 1`` past frames per layer (bounded memory for any length);
* cross-attention sees the audio in ``[t − w_past, t + w_future]`` with ``w_past < c`` (checked), so it
  also reaches at most ``c`` frames back.

Positions stay consistent when the cache slides: FaceFormer's biased mask depends only on the distance
``i − j`` (periodically, ``−floor((i − j) / p)·m_h``) and its PPE only on ``t mod p``, so with ``W = c`` (and
``p ≤ W``) every bias and every phase inference uses was seen in training, and for a training window of length
``≤ c`` the mask is the plain causal one, exactly the rows inference uses (row ``t`` for ``t < c``, the last
row afterwards). Cached decoding is exact: each layer's output at frame ``j`` depends only on frames
``j − c + 1 … j`` of the layer below, exactly what the cache keeps, so it equals recomputing from scratch the
last ``L·(c − 1) + 1`` frames (the receptive field of ``L`` layers; the last ``c`` frames for one layer).
Decoding with a cache window smaller than the one trained with is an approximation; it is exact whenever the
window is at least the sequence length.
"""

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


def periodic_positional_encoding(positions: torch.Tensor, d_model: int, period: int) -> torch.Tensor:
    """FaceFormer's PPE: the sinusoidal encoding of ``positions mod period``; (T,) long → (T, d_model)."""
    if d_model % 2:
        raise ValueError(f"d_model must be even for the sinusoidal encoding, got {d_model}")
    phase = (positions % period).to(torch.float32).unsqueeze(-1)  # (T, 1)
    freq = torch.exp(torch.arange(0, d_model, 2, device=positions.device) * (-math.log(10000.0) / d_model))
    angles = phase * freq  # (T, d_model / 2)
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)  # interleaved sin, cos


class PeriodicPositionalEncoding(nn.Module):
    """Adds the PPE at given absolute frame positions (any length), then dropout."""

    def __init__(self, d_model: int, period: int, dropout: float = 0.0):
        super().__init__()
        self.period = period
        self.dropout = nn.Dropout(dropout)
        # The encoding of every phase, computed once (a decoding step would otherwise recompute its row).
        self.register_buffer("table", periodic_positional_encoding(torch.arange(period), d_model, period), False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), positions (T,) → (B, T, D)."""
        return self.dropout(x + self.table[positions % self.period].to(x.dtype))


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """ALiBi head slopes (geometric, ``2^(−8h/n)``; interleaved for non-powers of two), as in FaceFormer. (H,)"""

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-(2.0 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(num_heads).is_integer():
        slopes = power_of_two(num_heads)
    else:
        closest = 2 ** math.floor(math.log2(num_heads))
        slopes = power_of_two(closest) + power_of_two(2 * closest)[0::2][: num_heads - closest]
    return torch.tensor(slopes)


def biased_causal_mask(
    query_positions: torch.Tensor,
    key_positions: torch.Tensor,
    slopes: torch.Tensor,
    period: int,
    max_context: int | None = None,
) -> torch.Tensor:
    """FaceFormer's biased causal mask for arbitrary positions: (Tq,), (Tk,), (H,) → float (H, Tq, Tk).

    ``bias[h, i, j] = −floor((q_i − k_j) / period) · slopes[h]`` when ``0 ≤ q_i − k_j`` (and
    ``q_i − k_j < max_context`` if given), ``−inf`` otherwise.
    """
    distance = query_positions[:, None] - key_positions[None, :]  # (Tq, Tk)
    allowed = distance >= 0
    if max_context is not None:
        allowed = allowed & (distance < max_context)
    bias = -torch.div(distance.clamp(min=0), period, rounding_mode="floor").to(slopes.dtype)
    bias = bias[None] * slopes[:, None, None]  # (H, Tq, Tk)
    return bias.masked_fill(~allowed[None], float("-inf"))


def alignment_mask(query_positions: torch.Tensor, key_positions: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """Cross-attention mask: motion frame t sees audio frames in ``[t − w_past, t + w_future]``. → (Tq, Tk)."""
    w_past, w_future = window
    distance = key_positions[None, :] - query_positions[:, None]  # (Tq, Tk): audio frame − motion frame
    allowed = (distance >= -w_past) & (distance <= w_future)
    zeros = torch.zeros(allowed.shape, device=allowed.device)
    return zeros.masked_fill(~allowed, float("-inf"))


class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate key/value projection (so memory K/V can be cached)."""

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, -1).transpose(1, 2)  # (B, H, T, D/H)

    def project_kv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, S, D) → keys, values (B, H, S, D/H)."""
        return self._heads(self.k_proj(x)), self._heads(self.v_proj(x))

    def attend(self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None):
        """Queries from x (B, T, D) against keys/values (B, H, S, D/H); mask (H|1, T, S) float or None."""
        queries = self._heads(self.q_proj(x))
        if mask is not None:
            mask = mask.to(queries.dtype)
        out = F.scaled_dot_product_attention(
            queries, keys, values, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(out.transpose(1, 2).flatten(2))


class DecoderLayer(nn.Module):
    """Pre-norm decoder layer: x += SelfAttn(LN x; biased causal), x += CrossAttn(LN x, A; aligned), x += FFN."""

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, dropout: float = 0.0):
        super().__init__()
        self.self_norm = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.cross_norm = nn.LayerNorm(d_model)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.ff_norm = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_dim, d_model))
        self.dropout = nn.Dropout(dropout)

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-attention keys/values of the audio memory (B, T_a, D), computed once per sequence."""
        return self.cross_attn.project_kv(memory)

    def forward(
        self,
        x: torch.Tensor,
        memory_kv: tuple[torch.Tensor, torch.Tensor],
        self_mask: torch.Tensor,
        cross_mask: torch.Tensor | None,
        past_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, T, D) new frames → (x', (keys, values)), the self-attention K/V of past ⊕ new frames.

        self_mask (H, T, S) is over past ⊕ new frames (S = past length + T); cross_mask (T, T_a) or None.
        """
        h = self.self_norm(x)
        keys, values = self.self_attn.project_kv(h)
        if past_kv is not None:
            keys = torch.cat((past_kv[0], keys), dim=2)
            values = torch.cat((past_kv[1], values), dim=2)
        x = x + self.dropout(self.self_attn.attend(h, keys, values, self_mask))
        cross_mask = None if cross_mask is None else cross_mask[None]
        x = x + self.dropout(self.cross_attn.attend(self.cross_norm(x), *memory_kv, cross_mask))
        x = x + self.dropout(self.ff(self.ff_norm(x)))
        return x, (keys, values)


def concat_memory_kv(old: list, new: list) -> list:
    """Per-layer cross-attention (keys, values) of two consecutive memory spans, joined along time (streaming)."""
    return [(torch.cat((k0, k1), 2), torch.cat((v0, v1), 2)) for (k0, v0), (k1, v1) in zip(old, new, strict=True)]


@dataclass
class DecoderCache:
    """Self-attention keys/values per layer and their frame positions, for incremental decoding.

    With ``max_context = c`` only the last ``c − 1`` frames are kept (the next query attends to them and
    itself, c frames), so memory is bounded for long audio.
    """

    max_context: int | None = None
    positions: torch.Tensor | None = None  # (S,) long
    layers: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (B, H, S, D/H) each

    def __len__(self) -> int:
        return 0 if self.positions is None else int(self.positions.numel())

    def past(self, layer: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        return self.layers[layer] if layer < len(self.layers) else None

    def keep(self, length: int) -> slice:
        """The frames of a length-``length`` sequence that later queries may still attend to."""
        return slice(None) if self.max_context is None else slice(max(0, length - self.max_context + 1), None)

    def update(self, positions: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Store past ⊕ new positions (S,) and per-layer K/V (B, H, S, D/H), trimmed to the window."""
        keep = self.keep(positions.numel())
        self.positions = positions[keep]
        self.layers = [(k[:, :, keep], v[:, :, keep]) for k, v in layers]


class CausalDecoder(nn.Module):
    """PPE + a stack of :class:`DecoderLayer` + final LayerNorm over motion embeddings, with an audio memory.

    ``forward`` decodes a whole (teacher-forced) sequence in parallel; ``step`` decodes one new frame with a
    :class:`DecoderCache`, costing one pass through the layers against the cached frames (not the prefix
    re-run) and a slice of the memory around the frame (the alignment window).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        num_layers: int,
        ff_dim: int,
        dropout: float = 0.0,
        period: int = 25,
        audio_window: tuple[int, int] = (2, 2),
        max_context: int | None = None,
    ):
        super().__init__()
        if max_context is not None and not 0 <= audio_window[0] < max_context:
            raise ValueError(f"audio_window's past ({audio_window[0]}) must be below max_context ({max_context})")
        self.period = period
        self.audio_window = tuple(audio_window)
        self.max_context = max_context
        self.positional = PeriodicPositionalEncoding(d_model, period, dropout)
        self.layers = nn.ModuleList(DecoderLayer(d_model, num_heads, ff_dim, dropout) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        self.register_buffer("slopes", alibi_slopes(num_heads), persistent=False)

    def memory_kv(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-layer cross-attention K/V of the memory (B, T_a, D)."""
        return [layer.memory_kv(memory) for layer in self.layers]

    def self_mask(self, queries: torch.Tensor, keys: torch.Tensor, max_context: int | None) -> torch.Tensor:
        """The biased causal mask over the last ``max_context`` frames, (H, Tq, Tk): one function for
        training (:meth:`forward`) and inference (:meth:`step`), relative in the positions."""
        return biased_causal_mask(queries, keys, self.slopes, self.period, max_context)

    def forward(
        self, x: torch.Tensor, memory_kv: list[tuple[torch.Tensor, torch.Tensor]], start: int = 0
    ) -> torch.Tensor:
        """Motion embeddings x (B, T, D) (already shifted right) → hidden states (B, T, D).

        ``x`` holds frames ``start … start + T − 1`` of the sequence whose audio memory gives ``memory_kv``
        (frame indices into it; 0 for a training window with its own audio).
        """
        positions = torch.arange(start, start + x.shape[1], device=x.device)
        audio_positions = torch.arange(memory_kv[0][0].shape[2], device=x.device)
        self_mask = self.self_mask(positions, positions, self.max_context)
        cross_mask = alignment_mask(positions, audio_positions, self.audio_window)
        x = self.positional(x, positions)
        for layer, kv in zip(self.layers, memory_kv, strict=True):
            x, _ = layer(x, kv, self_mask, cross_mask)
        return self.norm(x)

    def step(
        self,
        x: torch.Tensor,
        position: int,
        memory_kv: list[tuple[torch.Tensor, torch.Tensor]],
        cache: DecoderCache,
        memory_start: int = 0,
    ) -> torch.Tensor:
        """One new frame's embedding x (B, 1, D) at ``position`` → hidden state (B, 1, D); updates ``cache``.

        ``cache.max_context`` (not the decoder's) decides which past frames are kept and attended to.
        ``memory_start``: the frame of ``memory_kv``'s first entry (streaming keeps only the recent memory).
        """
        # filled on the device: a tensor built from a Python list is copied there, which waits for the GPU
        query = torch.full((1,), position, dtype=torch.long, device=x.device)
        keys = query if cache.positions is None else torch.cat((cache.positions, query))
        self_mask = self.self_mask(query, keys, cache.max_context)
        w_past, w_future = self.audio_window
        lo, hi = max(0, position - w_past) - memory_start, position + w_future + 1 - memory_start
        x = self.positional(x, query)
        new_layers = []
        for i, (layer, (mem_k, mem_v)) in enumerate(zip(self.layers, memory_kv, strict=True)):
            # Every memory frame in [lo, hi) is inside the alignment window: no cross mask is needed.
            x, kv = layer(x, (mem_k[:, :, lo:hi], mem_v[:, :, lo:hi]), self_mask, None, cache.past(i))
            new_layers.append(kv)
        cache.update(keys, new_layers)
        return self.norm(x)
