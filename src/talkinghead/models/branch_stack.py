"""The facial-motion branches' decoders run side by side as one batched decoder.

Stage 1 (Eq. 2–3) decodes three branches of the same shape (``β_lip``, ``β_other``, ``O_lip``), each a
:class:`~talkinghead.models.attention.CausalDecoder` fed its own previous outputs. The tiny configs' branches
are a few dozen small operations per pass (one frame per step at inference, a training window when teacher
forced), so on a CPU a pass costs the operations' overhead more than their arithmetic, and running the branches
one after the other pays it three times.

:class:`BranchStack` stacks the branches' weights along a leading branch dimension and runs every linear layer
of all branches as one batched matrix product (:func:`torch.baddbmm`) and every attention as one call with the
branches folded into the batch. Each branch computes what it computes alone: the same weights, operations and
dropout sites (the masks are drawn for the stacked tensors), equal to float rounding. The stack is built from
the parameters by differentiable operations, so training backpropagates through it into each branch's own
weights; inference builds it once per utterance or stream.

Shapes: ``N`` branches, ``B`` sequences, ``T`` frames, ``D`` model width, ``H`` heads; a stacked activation is
(N, B, T, D); attention tensors fold branches into the batch, (N·B, H, T, D/H); the branches' outputs (28, 24
and 3L values) are zero-padded to the widest.
"""

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from talkinghead.models.attention import DecoderCache, DecoderLayer, alignment_mask, biased_causal_mask


def linear_weights(*linears: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """The (weight, bias) of linear layers applied side by side to one input, their outputs concatenated."""
    return torch.cat([linear.weight for linear in linears]), torch.cat([linear.bias for linear in linears])


class StackedLinear:
    """N linear layers, each applied to its own rows: x (N, ..., in) → (N, ..., out), one :func:`torch.baddbmm`.

    ``layers``: (weight (out, in), bias (out,)) per branch; narrower ones are zero-padded to ``pad_in`` /
    ``pad_out`` (default: the widest), which adds exact zeros. Differentiable in the weights.
    """

    def __init__(self, layers: list[tuple[torch.Tensor, torch.Tensor]], pad_in: int | None = None, pad_out=None):
        rows = pad_out or max(weight.shape[0] for weight, _ in layers)
        cols = pad_in or max(weight.shape[1] for weight, _ in layers)
        self.weight = torch.stack(
            [F.pad(weight.T, (0, rows - weight.shape[0], 0, cols - weight.shape[1])) for weight, _ in layers]
        )  # (N, in, out): x @ weight
        self.bias = torch.stack([F.pad(bias, (0, rows - bias.shape[0])) for _, bias in layers])[:, None]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(x.shape[0], -1, x.shape[-1])
        return torch.baddbmm(self.bias, rows, self.weight).reshape(*x.shape[:-1], self.weight.shape[-1])


class StackedLayerNorm:
    """N layer norms of the same width, each with its own affine parameters: x (N, ..., D) → (N, ..., D)."""

    def __init__(self, norms: list[nn.LayerNorm]):
        self.shape, self.eps = norms[0].normalized_shape, norms[0].eps
        self.weight = torch.stack([norm.weight for norm in norms])
        self.bias = torch.stack([norm.bias for norm in norms])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        view = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
        return torch.addcmul(self.bias.view(view), F.layer_norm(x, self.shape, eps=self.eps), self.weight.view(view))


class StackedDecoderLayer:
    """N :class:`~talkinghead.models.attention.DecoderLayer` s' weights; :meth:`__call__` is their forward."""

    def __init__(self, layers: list[DecoderLayer]):
        self.num_heads = layers[0].self_attn.num_heads
        self.width = layers[0].self_norm.normalized_shape[0]
        self.self_norm = StackedLayerNorm([layer.self_norm for layer in layers])
        self.self_qkv = StackedLinear(
            [linear_weights(layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj) for layer in layers]
        )
        self.self_out = StackedLinear([linear_weights(layer.self_attn.out_proj) for layer in layers])
        self.cross_norm = StackedLayerNorm([layer.cross_norm for layer in layers])
        self.cross_q = StackedLinear([linear_weights(layer.cross_attn.q_proj) for layer in layers])
        self.cross_kv = StackedLinear(
            [linear_weights(layer.cross_attn.k_proj, layer.cross_attn.v_proj) for layer in layers]
        )
        self.cross_out = StackedLinear([linear_weights(layer.cross_attn.out_proj) for layer in layers])
        self.ff_norm = StackedLayerNorm([layer.ff_norm for layer in layers])
        self.ff_in = StackedLinear([linear_weights(layer.ff[0]) for layer in layers])
        self.ff_out = StackedLinear([linear_weights(layer.ff[3]) for layer in layers])

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """(N, B, T, D) → (N·B, H, T, D/H)."""
        n, batch, length, _ = x.shape
        return x.reshape(n * batch, length, self.num_heads, -1).transpose(1, 2)

    def merge(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """(N·B, H, T, D/H) → (N, B, T, D)."""
        return x.transpose(1, 2).reshape(n, x.shape[0] // n, x.shape[2], self.width)

    def memory_kv(self, memory: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio memory (B, T, D), shared by the N branches → cross-attention keys, values (N·B, H, T, D/H)."""
        keys, values = self.cross_kv(memory.expand(n, *memory.shape)).chunk(2, dim=-1)
        return self.heads(keys), self.heads(values)

    def __call__(
        self,
        x: torch.Tensor,
        memory_kv: tuple[torch.Tensor, torch.Tensor],
        self_mask: torch.Tensor,
        cross_mask: torch.Tensor | None,
        past_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        dropout: float = 0.0,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (N, B, T, D) new frames → (x', the self-attention K/V of past ⊕ new frames), as
        :meth:`DecoderLayer.forward <talkinghead.models.attention.DecoderLayer.forward>` with dropout ``dropout``.

        self_mask (H, T, S) over past ⊕ new frames; cross_mask (T, T_a) or None.
        """
        n = x.shape[0]
        h = self.self_norm(x)
        queries, keys, values = (self.heads(part) for part in self.self_qkv(h).chunk(3, dim=-1))
        if past_kv is not None:
            keys = torch.cat((past_kv[0], keys), dim=2)
            values = torch.cat((past_kv[1], values), dim=2)
        attended = F.scaled_dot_product_attention(
            queries, keys, values, attn_mask=self_mask.to(queries.dtype), dropout_p=dropout
        )
        x = x + F.dropout(self.self_out(self.merge(attended, n)), dropout, dropout > 0)
        queries = self.heads(self.cross_q(self.cross_norm(x)))
        mask = None if cross_mask is None else cross_mask[None].to(queries.dtype)
        attended = F.scaled_dot_product_attention(queries, *memory_kv, attn_mask=mask, dropout_p=dropout)
        x = x + F.dropout(self.cross_out(self.merge(attended, n)), dropout, dropout > 0)
        hidden = F.dropout(F.gelu(self.ff_in(self.ff_norm(x))), dropout, dropout > 0)
        x = x + F.dropout(self.ff_out(hidden), dropout, dropout > 0)
        return x, (keys, values)


class BranchStack:
    """The :class:`~talkinghead.models.facial_motion.MotionBranch` es of one generator as a single decoder.

    :meth:`memory_kv` is the branches' ``decoder.memory_kv``; :meth:`teacher_forced` is each branch's
    ``start`` token and ``embed`` of the targets shifted right → ``decoder`` → ``output``; :meth:`step` is each
    branch's ``embed`` → ``decoder.step`` → ``output`` — run side by side; values are stacked and zero-padded to
    the widest output, (N, B, T, widest). Dropout follows the branches' training mode.
    """

    def __init__(self, branches: list[nn.Module]):
        decoders = [branch.decoder for branch in branches]
        self.widths = [branch.head.out_features for branch in branches]
        self.width = max(self.widths)
        self.dropout = decoders[0].positional.dropout.p if branches[0].training else 0.0
        self.period, self.audio_window = decoders[0].period, decoders[0].audio_window
        self.max_context = decoders[0].max_context
        self.table, self.slopes = decoders[0].positional.table, decoders[0].slopes
        self.input_proj = StackedLinear([linear_weights(branch.input_proj) for branch in branches], pad_in=self.width)
        self.head = StackedLinear([linear_weights(branch.head) for branch in branches], pad_out=self.width)
        self.start_tokens = torch.stack([branch.start_token for branch in branches])[:, None, None]  # (N,1,1,D)
        device = self.start_tokens.device
        self.sigmoid = torch.tensor([branch.sigmoid for branch in branches], device=device)[:, None, None, None]
        self.scale = torch.tensor([float(branch.scale) for branch in branches], device=device)[:, None, None, None]
        self.layers = [StackedDecoderLayer(list(layers)) for layers in zip(*(d.layers for d in decoders), strict=True)]
        self.norm = StackedLayerNorm([decoder.norm for decoder in decoders])

    def __len__(self) -> int:
        return len(self.widths)

    def memory_kv(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-layer cross-attention K/V of the memory (B, T, D), branches folded into the batch."""
        return [layer.memory_kv(memory, len(self)) for layer in self.layers]

    def stack(self, values: list[torch.Tensor]) -> torch.Tensor:
        """Per-branch values (B, T, out_i) → (N, B, T, widest), zero-padded."""
        return torch.stack([F.pad(value, (0, self.width - value.shape[-1])) for value in values])

    def embed(self, values: torch.Tensor) -> torch.Tensor:
        """Stacked output values (N, B, T, widest) → the decoders' input embeddings (N, B, T, D)."""
        return self.input_proj(torch.where(self.sigmoid, values, values / self.scale))

    def output(self, hidden: torch.Tensor) -> torch.Tensor:
        raw = self.head(self.norm(hidden))
        return torch.where(self.sigmoid, torch.sigmoid(raw), raw * self.scale)

    def positional(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        x = x + self.table[positions % self.period].to(x.dtype)
        return F.dropout(x, self.dropout, self.dropout > 0)

    def teacher_forced(self, values: torch.Tensor, memory_kv: list) -> torch.Tensor:
        """Teacher values (N, B, T, widest) → predictions (N, B, T, widest); frame t sees values < t."""
        n, batch, length, _ = values.shape
        start = self.start_tokens.expand(n, batch, 1, -1)
        x = torch.cat((start, self.embed(values[:, :, :-1])), dim=2)
        positions = torch.arange(length, device=x.device)
        audio_positions = torch.arange(memory_kv[0][0].shape[2], device=x.device)
        self_mask = biased_causal_mask(positions, positions, self.slopes, self.period, self.max_context)
        cross_mask = alignment_mask(positions, audio_positions, self.audio_window)
        x = self.positional(x, positions)
        for layer, kv in zip(self.layers, memory_kv, strict=True):
            x, _ = layer(x, kv, self_mask, cross_mask, dropout=self.dropout)
        return self.output(x)

    def step(
        self,
        previous: torch.Tensor | None,
        position: int,
        memory_kv: list[tuple[torch.Tensor, torch.Tensor]],
        cache: DecoderCache,
        memory_start: int = 0,
    ) -> torch.Tensor:
        """Decode frame ``position`` of every branch → outputs (N, B, 1, widest), the branches' values.

        ``previous``: the last step's return value, None at frame 0 (the start tokens). ``cache`` holds the
        branches' self-attention K/V folded into its batch; ``memory_start`` is the frame of ``memory_kv``'s
        first entry, as in :meth:`~talkinghead.models.attention.CausalDecoder.step`.
        """
        n, batch = len(self), memory_kv[0][0].shape[0] // len(self)
        x = self.start_tokens.expand(n, batch, 1, -1) if previous is None else self.embed(previous)
        # filled on the device: a tensor built from a Python list is copied there, which waits for the GPU
        query = torch.full((1,), position, dtype=torch.long, device=x.device)
        keys = query if cache.positions is None else torch.cat((cache.positions, query))
        self_mask = biased_causal_mask(query, keys, self.slopes, self.period, cache.max_context)
        lo = max(0, position - self.audio_window[0]) - memory_start
        hi = position + self.audio_window[1] + 1 - memory_start
        x = self.positional(x, query)
        new_layers = []
        for i, (layer, (mem_k, mem_v)) in enumerate(zip(self.layers, memory_kv, strict=True)):
            # Every memory frame in [lo, hi) is inside the alignment window: no cross mask is needed.
            x, kv = layer(x, (mem_k[:, :, lo:hi], mem_v[:, :, lo:hi]), self_mask, None, cache.past(i), self.dropout)
            new_layers.append(kv)
        cache.update(keys, new_layers)
        return self.output(x)
