"""The facial-motion branches' decoders stacked into one batched pass, for frame-by-frame inference.

Stage 1 (Eq. 2–3) decodes three branches of the same shape (``β_lip``, ``β_other``, ``O_lip``), each an
autoregressive :class:`~talkinghead.models.attention.CausalDecoder` fed its own previous output. One decoding
step of a two-layer branch is a few dozen tiny operations on a single frame, so on a CPU a step costs the
operations' overhead, not their arithmetic; running the branches one after the other pays it three times.

:class:`BranchStack` copies the branches' weights into tensors with a leading branch dimension and runs every
linear layer of all branches as one batched matrix product (:func:`torch.baddbmm`), every attention as one call
with the branches folded into the batch. Each branch computes exactly what it computes alone (the same weights
and the same operations, up to float rounding from the fused products: ~1e-7), so
:meth:`~talkinghead.models.facial_motion.FacialMotionGenerator.step` decodes the same frames with a third of
the calls. The stack is a snapshot of the weights, built when decoding starts; training does not use it.

Shapes: ``N`` branches, ``B`` sequences, ``D`` model width, ``H`` heads; a stacked activation is (N, B, D);
attention tensors fold branches into the batch, (N·B, H, T, D/H); the branches' outputs (28, 24 and 3L values)
are zero-padded to the widest.
"""

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from talkinghead.models.attention import DecoderCache, DecoderLayer, biased_causal_mask


def linear_weights(*linears: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """The (weight, bias) of linear layers applied side by side to one input, their outputs concatenated."""
    return torch.cat([linear.weight for linear in linears]), torch.cat([linear.bias for linear in linears])


class StackedLinear:
    """N linear layers, each applied to its own rows: x (N, M, in) → (N, M, out), one :func:`torch.baddbmm`.

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
        return torch.baddbmm(self.bias, x, self.weight)


class StackedLayerNorm:
    """N layer norms of the same width, each with its own affine parameters: x (N, M, D) → (N, M, D)."""

    def __init__(self, norms: list[nn.LayerNorm]):
        self.shape, self.eps = norms[0].normalized_shape, norms[0].eps
        self.weight = torch.stack([norm.weight for norm in norms])[:, None]
        self.bias = torch.stack([norm.bias for norm in norms])[:, None]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias, F.layer_norm(x, self.shape, eps=self.eps), self.weight)


class StackedDecoderLayer:
    """N :class:`~talkinghead.models.attention.DecoderLayer` s' weights; :meth:`step` is their forward on one
    new frame each, against their own cached self-attention keys/values and audio memory (no dropout)."""

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
        """(N, B, T·D), each row T frames → (N·B, H, T, D/H)."""
        n, batch, _ = x.shape
        return x.reshape(n * batch, -1, self.num_heads, self.width // self.num_heads).transpose(1, 2)

    def merge(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """(N·B, H, 1, D/H) → (N, B, D)."""
        return x.transpose(1, 2).reshape(n, -1, self.width)

    def memory_kv(self, memory: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio memory (B, T, D), shared by the N branches → cross-attention keys, values (N·B, H, T, D/H)."""
        batch, length, width = memory.shape
        keys, values = self.cross_kv(memory.reshape(1, batch * length, width).expand(n, -1, -1)).chunk(2, dim=-1)
        return self.heads(keys.reshape(n, batch, -1)), self.heads(values.reshape(n, batch, -1))

    def step(
        self,
        x: torch.Tensor,
        memory_kv: tuple[torch.Tensor, torch.Tensor],
        self_mask: torch.Tensor,
        past_kv: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (N, B, D), one new frame per sequence → (x', the self-attention K/V of past ⊕ new frames).

        ``memory_kv``: the memory frames inside the new frame's alignment window (no cross mask needed).
        """
        n = x.shape[0]
        h = self.self_norm(x)
        queries, keys, values = (self.heads(part) for part in self.self_qkv(h).chunk(3, dim=-1))
        if past_kv is not None:
            keys = torch.cat((past_kv[0], keys), dim=2)
            values = torch.cat((past_kv[1], values), dim=2)
        attended = F.scaled_dot_product_attention(queries, keys, values, attn_mask=self_mask)
        x = x + self.self_out(self.merge(attended, n))
        queries = self.heads(self.cross_q(self.cross_norm(x)))
        x = x + self.cross_out(self.merge(F.scaled_dot_product_attention(queries, *memory_kv), n))
        x = x + self.ff_out(F.gelu(self.ff_in(self.ff_norm(x))))
        return x, (keys, values)


class BranchStack:
    """The :class:`~talkinghead.models.facial_motion.MotionBranch` es of one generator as a single decoder.

    :meth:`memory_kv` and :meth:`step` are the branches' ``decoder.memory_kv`` and ``embed`` →
    ``decoder.step`` → ``output`` run side by side; outputs come stacked and zero-padded, (N, B, widest).
    """

    def __init__(self, branches: list[nn.Module]):
        decoders = [branch.decoder for branch in branches]
        self.widths = [branch.head.out_features for branch in branches]
        self.width = max(self.widths)
        self.period, self.audio_window = decoders[0].period, decoders[0].audio_window
        self.table, self.slopes = decoders[0].positional.table, decoders[0].slopes
        self.input_proj = StackedLinear([linear_weights(branch.input_proj) for branch in branches], pad_in=self.width)
        self.head = StackedLinear([linear_weights(branch.head) for branch in branches], pad_out=self.width)
        self.start_tokens = torch.stack([branch.start_token for branch in branches])[:, None]  # (N, 1, D)
        device = self.start_tokens.device
        self.sigmoid = torch.tensor([branch.sigmoid for branch in branches], device=device)[:, None, None]
        self.scale = torch.tensor([float(branch.scale) for branch in branches], device=device)[:, None, None]
        self.layers = [StackedDecoderLayer(list(layers)) for layers in zip(*(d.layers for d in decoders), strict=True)]
        self.norm = StackedLayerNorm([decoder.norm for decoder in decoders])

    def __len__(self) -> int:
        return len(self.widths)

    def memory_kv(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-layer cross-attention K/V of the memory (B, T, D), branches folded into the batch."""
        return [layer.memory_kv(memory, len(self)) for layer in self.layers]

    def step(
        self,
        previous: torch.Tensor | None,
        position: int,
        memory_kv: list[tuple[torch.Tensor, torch.Tensor]],
        cache: DecoderCache,
        memory_start: int = 0,
    ) -> torch.Tensor:
        """Decode frame ``position`` of every branch → outputs (N, B, widest), the branches' ``output`` values.

        ``previous``: the last step's return value, None at frame 0 (the start tokens). ``cache`` holds the
        branches' self-attention K/V folded into its batch; ``memory_start`` is the frame of ``memory_kv``'s
        first entry, as in :meth:`~talkinghead.models.attention.CausalDecoder.step`.
        """
        n, batch = len(self), memory_kv[0][0].shape[0] // len(self)
        if previous is None:
            x = self.start_tokens.expand(n, batch, -1)
        else:
            x = self.input_proj(torch.where(self.sigmoid, previous, previous / self.scale))
        query = torch.tensor([position], device=x.device)
        keys = query if cache.positions is None else torch.cat((cache.positions, query))
        self_mask = biased_causal_mask(query, keys, self.slopes, self.period, cache.max_context).to(x.dtype)
        lo = max(0, position - self.audio_window[0]) - memory_start
        hi = position + self.audio_window[1] + 1 - memory_start
        x = x + self.table[position % self.period].to(x.dtype)
        new_layers = []
        for i, (layer, (mem_k, mem_v)) in enumerate(zip(self.layers, memory_kv, strict=True)):
            x, kv = layer.step(x, (mem_k[:, :, lo:hi], mem_v[:, :, lo:hi]), self_mask, cache.past(i))
            new_layers.append(kv)
        cache.update(keys, new_layers)
        raw = self.head(self.norm(x))
        return torch.where(self.sigmoid, torch.sigmoid(raw), raw * self.scale)
