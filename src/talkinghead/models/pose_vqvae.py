"""Learnable Head Pose Codebook, reconstruction phase (VividTalk §3.2, Eq. 5, 6; trained with Eq. 12).

A VQ-VAE over the relative head pose ``P_r = P − P⁰`` (B, T, 6) (:func:`talkinghead.face.pose.relative_pose`):

* encoder E: per-frame ``Conv1d(6 → d, k=3)``, then ``log2(f)`` strided ``Conv1d(k=4, stride=2)`` blocks
  (temporal downsampling by ``f``, a power of two: one code per ``f`` frames), then a small bidirectional
  transformer encoder and a linear map to the code size → ``Ẑ`` (B, T/f, d_code);
* :class:`VectorQuantizer` ``q(·)``: nearest codebook entry (Eq. 5), straight-through gradients, the codebook
  and commitment terms of Eq. 12, optional EMA codebook updates and dead-code restarts;
* decoder D mirroring E: linear, transformer encoder, ``log2(f)`` ``ConvTranspose1d(k=4, stride=2)`` blocks,
  ``Conv1d(d → 6, k=3)`` → ``P̂_r`` (B, T, 6) (Eq. 6).

Input normalisation. The 6 channels come in radians (pitch, yaw, roll) and centimetres (tx, ty, tz); the
network sees ``P_r / pose_scale`` with fixed per-channel scales, by default ``0.1 rad`` (≈ 5.7°) for the
angles and ``1 cm`` for the translation — a typical talking-head excursion of either kind is then O(1), so
the reconstruction term weighs the channels comparably. Outputs are de-normalised (radians, cm).

A sequence whose length is not a multiple of ``f`` is padded at the end by repeating its last frame and the
decoded sequence is cropped back to T.

Long sequences (a departure: the paper does not discuss long-utterance inference). The codebook is trained on
windows of ``data.window`` frames, but the mapper's codes of a whole utterance are decoded at inference; D's
transformer would then attend over the whole sequence, at positions never seen in training. With
``max_context = W`` frames (= ``data.window`` in the configs) :meth:`PoseVQVAE.decode` decodes a sequence of
more than ``W / f`` codes in windows of ``W / f`` codes, each exactly as in training, overlapping by half a
window, and cross-fades the overlaps linearly (:func:`crossfade_weights`), so every frame is a convex
combination of at most a few window decodes and no seam is visible. Sequences of at most ``W / f`` codes go
through the unchanged single pass (bit-identical to ``max_context = None``).

Causal decoding (``causal=True``, a departure for streaming: the paper's D is bidirectional). D's transformer
attends from each code step to itself and the ``W / f − 1`` steps before it (a band mask), so a code step's
output never waits for later codes; only the upsampling convolutions look ahead, by one code step with the
default kernels (:meth:`PoseVQVAE.conv_reach`). :meth:`PoseVQVAE.decode` then runs one pass over the whole
sequence, in chunks of ``W / f`` steps that each carry the left context their band reaches, so the result does
not depend on the chunking and :class:`CausalStreamingPoseDecoder` emits the same frames one code step after
their code instead of about one window later. With ``causal_upsampling=True`` the convolutions look back only
(:class:`CausalUpsample1d`, and the last ``Conv1d`` padded on the left), so a code step's frames are final as soon
as the code is: no lookahead at all.
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from talkinghead.face.pose import POSE_DIM
from talkinghead.models.attention import periodic_positional_encoding

#: Default per-channel scale of the network's pose units: radians for the angles, cm for the translation.
DEFAULT_POSE_SCALE = (0.1, 0.1, 0.1, 1.0, 1.0, 1.0)


def codebook_usage(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Histogram of code indices (K,), or one per codebook group (G, K) → (fraction of the codes used at least
    once, perplexity exp(H) of each group's histogram, averaged over the groups)."""
    counts = counts.float()
    total = counts.sum(-1, keepdim=True).clamp(min=1)
    probs = counts / total
    entropy = -(probs * probs.clamp(min=1e-12).log()).sum(-1)
    return (counts > 0).float().mean(), entropy.exp().mean()


class VectorQuantizer(nn.Module):
    """Codebook ``Z = {z_k}`` (K × d) and the quantisation ``q(ẑ) = argmin_k ‖ẑ − z_k‖`` (Eq. 5).

    Product codes (a departure, ``num_groups = G > 1``): ẑ is split into G parts of ``d / G`` values, each
    quantised by its own codebook of K entries, so one code step carries ``G · log2(K)`` bits instead of
    ``log2(K)`` for the same K. With a single codebook the reconstruction spends its few bits on the channels of
    largest spread (yaw and pitch) and returns roll and translation at a fraction of theirs; G codebooks keep
    every channel. G = 1 is the paper's codebook. Indices always carry the group axis: (..., G).

    Args:
        num_codes: K (per group).
        code_dim: d (a multiple of G).
        commitment_weight: β of the commitment term ``β‖sg(z_q) − E(P_r)‖²`` (Eq. 12 has β = 1; 0.25 is the
            usual VQ-VAE value).
        ema: update the codebook by exponential moving averages of the assigned encoder outputs instead of
            the codebook term's gradient (the codebook is then a buffer and the codebook term is reported only).
        ema_decay, eps: EMA decay and Laplace smoothing of the cluster sizes.
        restart_after: a code unused for this many consecutive training steps is re-seeded from a random
            encoder output of the current batch (0 = never). Updates happen only in training mode.
        num_groups: G.

    The entries of all groups are the rows of one ``codebook`` (G·K, d / G), group g at rows ``g·K … g·K + K − 1``.
    Under ``torch.distributed`` the code counts (and EMA sums) are summed over ranks and re-seeded codes are
    broadcast from rank 0, so every rank keeps the same codebook.
    """

    def __init__(
        self,
        num_codes: int = 256,
        code_dim: int = 64,
        commitment_weight: float = 0.25,
        ema: bool = False,
        ema_decay: float = 0.99,
        eps: float = 1e-5,
        restart_after: int = 100,
        num_groups: int = 1,
    ):
        super().__init__()
        if num_groups < 1 or code_dim % num_groups:
            raise ValueError(f"code_dim ({code_dim}) must be a multiple of num_groups ({num_groups})")
        self.num_codes, self.code_dim, self.num_groups = num_codes, code_dim, num_groups
        self.group_dim = code_dim // num_groups
        self.commitment_weight = commitment_weight
        self.ema, self.ema_decay, self.eps = ema, ema_decay, eps
        self.restart_after = restart_after
        init = torch.randn(num_groups * num_codes, self.group_dim) / math.sqrt(code_dim)
        if ema:
            self.register_buffer("codebook", init)
            self.register_buffer("ema_count", torch.ones(num_groups * num_codes))
            self.register_buffer("ema_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init)
        self.register_buffer("steps_unused", torch.zeros(num_groups * num_codes, dtype=torch.long))
        self.register_buffer("offsets", torch.arange(num_groups) * num_codes, persistent=False)

    def distances(self, z: torch.Tensor) -> torch.Tensor:
        """Squared distances ``‖ẑ_g − z_{g,k}‖²`` of each group's part: (..., d) → (..., G, K)."""
        parts = z.unflatten(-1, (self.num_groups, self.group_dim)).unsqueeze(-2)  # (..., G, 1, d/G)
        codebook = self.codebook.view(self.num_groups, self.num_codes, self.group_dim)
        products = (parts @ codebook.transpose(1, 2)).squeeze(-2)  # (..., G, K)
        return (parts.squeeze(-2).pow(2).sum(-1, keepdim=True) - 2 * products + codebook.pow(2).sum(-1)).clamp(min=0)

    def codes(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (..., G) long → codebook entries, the groups' parts concatenated (..., d)."""
        return F.embedding(self.rows(indices), self.codebook).flatten(-2)

    def rows(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (..., G) → rows of ``codebook`` (..., G), unique over all groups (histograms, one-hots)."""
        return indices + self.offsets

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 5 without gradients or updates: ẑ (..., d) → (z_q (..., d), indices (..., G)); z_q == codes(indices)."""
        indices = self.distances(z.detach()).argmin(-1)
        return self.codes(indices), indices

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """ẑ (..., d) → ``z_q`` (straight-through: value of the code, gradient of ẑ), ``indices`` (..., G),
        ``codebook_loss`` ‖sg(ẑ) − z_q‖², ``commitment_loss`` β‖sg(z_q) − ẑ‖² (Eq. 12, means over elements).

        In training mode also updates the EMA codebook and restarts dead codes (after the assignment).
        """
        z_q, indices = self.quantize(z)
        codebook_loss = F.mse_loss(z_q, z.detach())
        commitment_loss = self.commitment_weight * F.mse_loss(z, z_q.detach())
        if self.training:
            self._update(z.detach().reshape(-1, self.group_dim), self.rows(indices).reshape(-1))
        straight_through = z + (z_q - z).detach()
        return {
            "z_q": straight_through,
            "indices": indices,
            "codebook_loss": codebook_loss,
            "commitment_loss": commitment_loss,
        }

    @torch.no_grad()
    def _update(self, parts: torch.Tensor, rows: torch.Tensor) -> None:
        """EMA codebook step and dead-code restart from the batch's encoder outputs, as parts (N·G, d/G) with
        their assigned codebook rows (N·G,)."""
        entries = self.num_groups * self.num_codes
        one_hot = F.one_hot(rows, entries).to(parts.dtype)  # (N·G, G·K)
        counts = one_hot.sum(0)
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if distributed:
            torch.distributed.all_reduce(counts)
        if self.ema:
            sums = one_hot.t() @ parts  # (G·K, d/G)
            if distributed:
                torch.distributed.all_reduce(sums)
            self.ema_count.mul_(self.ema_decay).add_(counts, alpha=1 - self.ema_decay)
            self.ema_sum.mul_(self.ema_decay).add_(sums, alpha=1 - self.ema_decay)
            total = self.ema_count.view(self.num_groups, -1).sum(-1, keepdim=True)
            smoothed = (self.ema_count.view(self.num_groups, -1) + self.eps) / (total + self.num_codes * self.eps)
            self.codebook.copy_(self.ema_sum / (smoothed * total).reshape(-1, 1))
        self.steps_unused.add_(1).masked_fill_(counts > 0, 0)
        if self.restart_after <= 0:
            return
        dead = (self.steps_unused >= self.restart_after).nonzero().flatten()
        if dead.numel() == 0:
            return
        groups = parts.unflatten(0, (-1, self.num_groups))  # (N, G, d/G): re-seed from the same group's parts
        picks = torch.randint(0, groups.shape[0], (dead.numel(),), device=parts.device)
        seeds = groups[picks, dead // self.num_codes]
        if distributed:
            torch.distributed.broadcast(seeds, src=0)
        self.codebook.data[dead] = seeds
        if self.ema:
            self.ema_count[dead] = 1.0
            self.ema_sum[dead] = seeds
        self.steps_unused[dead] = 0

    def histogram(self, indices: torch.Tensor) -> torch.Tensor:
        """Counts of the given indices (..., G) per group: (G, K)."""
        counts = torch.bincount(self.rows(indices).flatten(), minlength=self.num_groups * self.num_codes)
        return counts.view(self.num_groups, self.num_codes)

    def usage(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fraction of codes used and perplexity of the given indices (..., G) (:func:`codebook_usage`)."""
        return codebook_usage(self.histogram(indices))


class CausalUpsample1d(nn.Module):
    """×``stride`` temporal upsampling that reads the current and earlier steps only: ``ConvTranspose1d(k, stride)``
    without padding, its output cut to ``stride · N`` frames, so output frame ``o`` depends on input steps
    ``⌈(o − k + 1) / stride⌉ … ⌊o / stride⌋``: the overlapping kernel interpolates between a step and the ones
    before it, never the next."""

    def __init__(self, channels: int, kernel_size: int = 4, stride: int = 2):
        super().__init__()
        self.conv = nn.ConvTranspose1d(channels, channels, kernel_size, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)[..., : x.shape[-1] * self.conv.stride[0]]


def _transformer(d_model: int, num_heads: int, num_layers: int, ff_dim: int, dropout: float) -> nn.Module:
    layer = nn.TransformerEncoderLayer(
        d_model, num_heads, ff_dim, dropout, activation="gelu", batch_first=True, norm_first=True
    )
    return nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)


def window_starts(length: int, window: int, hop: int) -> list[int]:
    """Starts of ``window``-long windows every ``hop`` covering ``range(length)``, the last one flush with the end."""
    if length <= window:
        return [0]
    return [*range(0, length - window, hop), length - window]


def crossfade_weights(size: int, fade: int, first: bool, last: bool) -> torch.Tensor:
    """(size,) weights of one window: linear ramps over ``fade`` frames, up at the start unless ``first``, down
    at the end unless ``last``; positive everywhere, so the normalised overlap-add is defined."""
    ramp = ((torch.arange(size) + 0.5) / fade).clamp(max=1.0)
    up = torch.ones(size) if first else ramp
    down = torch.ones(size) if last else ramp.flip(0)
    return torch.minimum(up, down)


def _add_positions(x: torch.Tensor, period: int, start: int = 0) -> torch.Tensor:
    positions = torch.arange(start, start + x.shape[1], device=x.device)
    return x + periodic_positional_encoding(positions, x.shape[-1], period).to(x.dtype)


def band_mask(length: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """(length, length) boolean attention mask, True where step i may **not** attend to step j: every j outside
    ``i − width < j ≤ i`` (causal attention over the last ``width`` steps)."""
    i = torch.arange(length, device=device)[:, None]
    j = torch.arange(length, device=device)[None]
    return (j > i) | (j <= i - width)


class PoseVQVAE(nn.Module):
    """E, q, D of Eq. 5–6 over (relative) head pose sequences. Pure ``nn.Module``.

    Args:
        downsample: f, frames per code (a power of two).
        d_model, num_heads, num_layers, ff_dim, dropout: conv width and transformer sizes (E and D each).
        code_dim, num_codes, commitment_weight, ema, ema_decay, restart_after, num_groups: see
            :class:`VectorQuantizer` (``num_groups > 1``: product codes, a departure from Eq. 5's single codebook).
        period: period (in code steps) of the sinusoidal positions added before each transformer.
        pose_scale: per-channel normalisation (6,) (radians, cm; see the module docstring).
        absolute_pose: the sequences this codebook is trained on are absolute poses P rather than P − P⁰
            (the Table 3 ablation); only recorded here, the caller prepares the input.
        max_context: frames one pass of D decodes, a multiple of ``downsample`` of at least 2 codes (the
            configs: the training window ``data.window``); longer sequences are decoded in cross-faded
            windows (module docstring). None = the whole sequence in one pass (older checkpoints).
        causal: D's transformer attends to the current and the ``max_context / downsample − 1`` previous code
            steps only (module docstring: causal decoding, for streaming); False is the paper's bidirectional D.
        causal_upsampling: D's convolutions read no later code step either (:class:`CausalUpsample1d`, the last
            conv padded on the left); needs ``causal``. False: the centred kernels of the module docstring.
    """

    def __init__(
        self,
        downsample: int = 4,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int | None = None,
        dropout: float = 0.0,
        code_dim: int = 64,
        num_codes: int = 256,
        commitment_weight: float = 0.25,
        ema: bool = False,
        ema_decay: float = 0.99,
        restart_after: int = 100,
        period: int = 64,
        pose_scale: Sequence[float] = DEFAULT_POSE_SCALE,
        absolute_pose: bool = False,
        max_context: int | None = None,
        num_groups: int = 1,
        causal: bool = False,
        causal_upsampling: bool = False,
    ):
        super().__init__()
        if downsample < 1 or downsample & (downsample - 1):
            raise ValueError(f"downsample must be a power of two, got {downsample}")
        if max_context is not None and (max_context % downsample or max_context < 2 * downsample):
            raise ValueError(f"max_context must be a multiple of downsample ≥ 2·{downsample}, got {max_context}")
        if causal and max_context is None:
            raise ValueError("causal decoding needs max_context (the band of code steps D attends over)")
        if causal_upsampling and not causal:
            raise ValueError("causal_upsampling needs causal=True (a bidirectional D reads later codes anyway)")
        self.max_context = max_context
        self.causal = causal
        self.downsample = downsample
        self.period = period
        self.absolute_pose = absolute_pose
        scale = torch.as_tensor(pose_scale, dtype=torch.float32)
        if scale.shape != (POSE_DIM,):
            raise ValueError(f"pose_scale must have {POSE_DIM} values, got {tuple(scale.shape)}")
        self.register_buffer("pose_scale", scale)
        ff_dim = ff_dim or 4 * d_model
        steps = int(math.log2(downsample))

        down = [nn.Conv1d(POSE_DIM, d_model, 3, padding=1), nn.GELU()]
        for _ in range(steps):
            down += [nn.Conv1d(d_model, d_model, 4, stride=2, padding=1), nn.GELU()]
        self.encoder_convs = nn.Sequential(*down)
        self.encoder_transformer = _transformer(d_model, num_heads, num_layers, ff_dim, dropout)
        self.encoder_out = nn.Linear(d_model, code_dim)

        self.quantizer = VectorQuantizer(
            num_codes, code_dim, commitment_weight, ema, ema_decay, restart_after=restart_after, num_groups=num_groups
        )

        self.decoder_in = nn.Linear(code_dim, d_model)
        self.decoder_transformer = _transformer(d_model, num_heads, num_layers, ff_dim, dropout)
        up = []
        for _ in range(steps):
            if causal_upsampling:
                up += [CausalUpsample1d(d_model), nn.GELU()]
            else:
                up += [nn.ConvTranspose1d(d_model, d_model, 4, stride=2, padding=1), nn.GELU()]
        if causal_upsampling:
            up += [nn.ConstantPad1d((2, 0), 0.0), nn.Conv1d(d_model, POSE_DIM, 3)]
        else:
            up += [nn.Conv1d(d_model, POSE_DIM, 3, padding=1)]
        self.decoder_convs = nn.Sequential(*up)

    def num_codes_for(self, num_frames: int) -> int:
        """Latent steps of a T-frame sequence: ceil(T / f)."""
        return -(-num_frames // self.downsample)

    def encode(self, pose: torch.Tensor) -> torch.Tensor:
        """E: pose (B, T, 6) in radians/cm → Ẑ (B, ceil(T/f), d_code), before quantisation."""
        length = pose.shape[1]
        pad = self.num_codes_for(length) * self.downsample - length
        x = pose / self.pose_scale
        if pad:
            x = torch.cat((x, x[:, -1:].expand(-1, pad, -1)), dim=1)
        h = self.encoder_convs(x.transpose(1, 2)).transpose(1, 2)  # (B, T/f, d_model)
        return self.encoder_out(self.encoder_transformer(_add_positions(h, self.period)))

    @property
    def window(self) -> int | None:
        """Code steps of one decoder pass (``max_context / downsample``); None without ``max_context``."""
        return None if self.max_context is None else self.max_context // self.downsample

    @property
    def transformer_reach(self) -> int:
        """Causal D: code steps before a step that its transformer output depends on (the band, once per layer)."""
        return self.decoder_transformer.num_layers * (self.window - 1)

    def decode(self, z_q: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """D: codes (B, N, d_code) → pose (B, num_frames or N·f, 6) in radians/cm (Eq. 6); in cross-faded windows
        of ``max_context`` frames when N exceeds one, or causally (module docstring)."""
        if self.causal:
            return self.upsample(self.transform(z_q))[:, :num_frames]
        window = self.window
        if window is None or z_q.shape[1] <= window:
            return self._decode(z_q)[:, :num_frames]
        return self._decode_windows(z_q, window)[:, :num_frames]

    def transform(self, z_q: torch.Tensor, start: int = 0, keep: int = 0) -> torch.Tensor:
        """Causal D's transformer: codes (B, n, d_code) at steps ``start, start + 1, …`` → hidden states (B, n −
        keep, d_model) of the steps from ``start + keep`` on; the first ``keep`` codes are left context only. The
        codes are processed in chunks of one window with the context each chunk's band reaches."""
        window, reach = self.window, self.transformer_reach
        chunks = []
        for first in range(keep, z_q.shape[1], window):
            context = max(0, first - reach)
            codes = z_q[:, context : first + window]
            x = _add_positions(self.decoder_in(codes), self.period, start + context)
            h = self.decoder_transformer(x, mask=band_mask(codes.shape[1], window, codes.device))
            chunks.append(h[:, first - context :])
        return torch.cat(chunks, dim=1) if chunks else z_q.new_zeros(z_q.shape[0], 0, self.decoder_in.out_features)

    def upsample(self, h: torch.Tensor) -> torch.Tensor:
        """D's upsampling convolutions: hidden states (B, n, d_model) → pose (B, n·f, 6) in radians/cm."""
        return self.decoder_convs(h.transpose(1, 2)).transpose(1, 2) * self.pose_scale

    def conv_reach(self) -> tuple[int, int]:
        """(left, right): how many code steps before and after its own a code step's frames depend on through
        the upsampling convolutions, traced back through each layer's kernel, stride and padding."""
        step, f = 8, self.downsample
        low, high = step * f, (step + 1) * f - 1  # the step's frames, then the inputs they read at each layer
        for layer in reversed(self.decoder_convs):
            if isinstance(layer, CausalUpsample1d):
                layer = layer.conv  # its cut drops only frames at the end: the same inputs per frame
            if isinstance(layer, nn.ConvTranspose1d):
                (k,), (stride,), (pad,) = layer.kernel_size, layer.stride, layer.padding
                low, high = -((k - 1 - pad - low) // stride), (high + pad) // stride
            elif isinstance(layer, nn.Conv1d):
                (k,), (pad,) = layer.kernel_size, layer.padding
                low, high = low - pad, high - pad + k - 1
            elif isinstance(layer, nn.ConstantPad1d):
                low, high = low - layer.padding[0], high - layer.padding[0]
        return step - low, high - step

    def _decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """One pass of the bidirectional D: (B, N, d_code) → (B, N·f, 6)."""
        return self.upsample(self.decoder_transformer(_add_positions(self.decoder_in(z_q), self.period)))

    def _decode_windows(self, z_q: torch.Tensor, window: int) -> torch.Tensor:
        """Overlapping windows of ``window`` codes (hop ``window // 2``), decoded as one batch, cross-faded."""
        batch, length, _ = z_q.shape
        hop, f = window // 2, self.downsample
        starts = window_starts(length, window, hop)
        decoded = self._decode(torch.cat([z_q[:, s : s + window] for s in starts]))  # (K·B, window·f, 6)
        decoded = decoded.unflatten(0, (len(starts), batch))
        out = z_q.new_zeros(batch, length * f, POSE_DIM)
        total = z_q.new_zeros(length * f, 1)
        for k, start in enumerate(starts):
            weight = crossfade_weights(window * f, (window - hop) * f, k == 0, k == len(starts) - 1)
            weight = weight.to(z_q)[:, None]
            frames = slice(start * f, (start + window) * f)
            out[:, frames] += weight * decoded[k]
            total[frames] += weight
        return out / total

    def forward(self, pose: torch.Tensor) -> dict[str, torch.Tensor]:
        """P_r (B, T, 6) → ``pose`` P̂_r (B, T, 6), ``z`` Ẑ, ``z_q`` (straight-through), ``indices`` (B, N, G),
        ``codebook_loss``, ``commitment_loss`` (Eq. 12 terms)."""
        z = self.encode(pose)
        out = self.quantizer(z)
        return {"pose": self.decode(out["z_q"], pose.shape[1]), "z": z, **out}

    def normalized_error(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean squared error in the network's normalised units (the ‖P_r − P̂_r‖² of Eq. 12, 13)."""
        return ((predicted - target) / self.pose_scale).pow(2).mean()


class StreamingPoseDecoder:
    """:meth:`PoseVQVAE.decode` of codes that arrive one step at a time, emitting each frame once no later code
    can change it; the frames equal the offline decode of the whole sequence (up to float rounding).

    With ``max_context`` (a window of ``w`` codes, hop ``w // 2``) the offline decode is a cross-faded sum of
    windows starting at ``0, hop, 2·hop, …`` below ``N − w`` plus one window flush with the end (N codes in
    all). A window starting at ``s`` is therefore a regular one as soon as ``N > s + w`` is known, and it is
    decoded as soon as its ``w`` codes are there; the frames of code ``n`` are final once every regular window
    covering it is decoded and ``N > n + w`` (the flush window cannot reach it). The delay is ``w`` codes after
    a code plus the time its last covering window's codes take to arrive. :meth:`close` (N known) decodes the
    remaining windows as the offline decode does, or the whole sequence in one pass when ``N ≤ w``; without
    ``max_context`` everything waits for :meth:`close`.

    Memory is bounded: the codes from the next undecoded window on and the overlap-add sums of the frames not
    emitted yet.
    """

    def __init__(self, vqvae: PoseVQVAE) -> None:
        self.vqvae = vqvae
        self.f = vqvae.downsample
        self.window = vqvae.window
        self.hop = None if self.window is None else self.window // 2
        #: Code steps after a code that its first frame waits for (None: everything waits for the end).
        self.lookahead_codes = None if self.window is None else self.window - 1
        self.codes: torch.Tensor | None = None  # (B, n, d) codes from code_start on
        self.code_start = 0
        self.num_codes = 0  # codes pushed so far
        self.next_window = 0  # index k of the next regular window (start k · hop)
        self.sums: torch.Tensor | None = None  # (B, frames, 6) weighted sums from frame_start on
        self.weights: torch.Tensor | None = None  # (frames, 1)
        self.frame_start = 0  # first frame not emitted yet

    def push(self, z_q: torch.Tensor, min_frames: int) -> torch.Tensor:
        """Append codes (B, n, d); ``min_frames`` is a lower bound on the final T. → the frames (B, m, 6)
        that became final (relative poses in radians/cm; m may be 0)."""
        min_total_codes = -(-min_frames // self.f)
        self.codes = z_q if self.codes is None else torch.cat((self.codes, z_q), dim=1)
        self.num_codes += z_q.shape[1]
        if self.window is None:
            return self._empty()
        while True:
            start = self.next_window * self.hop
            if not (start + self.window <= self.num_codes and min_total_codes > start + self.window):
                break
            self._add_window(start, first=self.next_window == 0, last=False)
            self.next_window += 1
        final_codes = max(0, min(self.next_window * self.hop, min_total_codes - self.window))
        out = self._emit(final_codes * self.f)
        # The flush window starts at N − w ≥ (codes so far) − w: keep its codes too.
        self._forget_codes(max(0, min(self.next_window * self.hop, self.num_codes - self.window)))
        return out

    def close(self, num_frames: int) -> torch.Tensor:
        """The remaining frames up to ``num_frames`` (the final T; N = ceil(T / f) codes must have been pushed)."""
        length = self.num_codes
        if self.codes is None:
            return self._empty()
        if self.window is None or (length <= self.window and self.next_window == 0):
            decoded = self.vqvae._decode(self.codes)[:, : num_frames - self.frame_start]
            self.frame_start += decoded.shape[1]
            return decoded
        starts = window_starts(length, self.window, self.hop)
        for k, start in enumerate(starts):
            if k >= self.next_window:
                self._add_window(start, first=k == 0, last=k == len(starts) - 1)
        self.next_window = len(starts)
        return self._emit(num_frames)

    def buffer_sizes(self) -> dict[str, int]:
        """Codes and frames held (for checking that memory stays bounded)."""
        return {
            "pose codes": 0 if self.codes is None else self.codes.shape[1],
            "pose frames": 0 if self.sums is None else self.sums.shape[1],
        }

    def _empty(self) -> torch.Tensor:
        batch = 1 if self.codes is None else self.codes.shape[0]
        return self.vqvae.pose_scale.new_zeros(batch, 0, POSE_DIM)

    def _add_window(self, start: int, first: bool, last: bool) -> None:
        window, f = self.window, self.f
        codes = self.codes[:, start - self.code_start : start - self.code_start + window]
        decoded = self.vqvae._decode(codes)  # (B, window·f, 6)
        weight = crossfade_weights(window * f, (window - self.hop) * f, first, last).to(decoded)[:, None]
        end = (start + window) * f
        if self.sums is None:
            self.sums = decoded.new_zeros(decoded.shape[0], 0, POSE_DIM)
            self.weights = decoded.new_zeros(0, 1)
        grow = end - self.frame_start - self.sums.shape[1]
        if grow > 0:
            self.sums = torch.cat((self.sums, self.sums.new_zeros(self.sums.shape[0], grow, POSE_DIM)), dim=1)
            self.weights = torch.cat((self.weights, self.weights.new_zeros(grow, 1)))
        frames = slice(start * f - self.frame_start, end - self.frame_start)
        self.sums[:, frames] += weight * decoded
        self.weights[frames] += weight

    def _emit(self, until: int) -> torch.Tensor:
        """Frames [frame_start, until) as sums / weights, then forgotten."""
        count = max(0, until - self.frame_start)
        if count == 0 or self.sums is None:
            return self._empty()
        out = self.sums[:, :count] / self.weights[:count]
        self.sums, self.weights = self.sums[:, count:], self.weights[count:]
        self.frame_start += count
        return out

    def _forget_codes(self, keep_from: int) -> None:
        drop = keep_from - self.code_start
        if drop > 0:
            self.codes = self.codes[:, drop:]
            self.code_start = keep_from


class CausalStreamingPoseDecoder:
    """:meth:`PoseVQVAE.decode` of a causal D (``causal=True``) for codes that arrive one step at a time: the
    frames of code ``n`` are emitted as soon as code ``n + right`` has arrived (``right`` from
    :meth:`PoseVQVAE.conv_reach`, one step with the default kernels), equal to the offline decode of the whole
    sequence up to float rounding. Holds the codes the band of D's transformer reaches back to and the hidden
    states the convolutions read; :meth:`close` decodes the last steps against the end of the sequence (its zero
    padding), as offline."""

    def __init__(self, vqvae: PoseVQVAE) -> None:
        if not vqvae.causal:
            raise ValueError("CausalStreamingPoseDecoder needs a causal PoseVQVAE (causal=True)")
        self.vqvae = vqvae
        self.f = vqvae.downsample
        self.left, self.lookahead_codes = vqvae.conv_reach()
        self.codes: torch.Tensor | None = None  # (B, n, d_code) from code_start on
        self.code_start = 0
        self.hidden: torch.Tensor | None = None  # (B, n, d_model) from hidden_start on
        self.hidden_start = 0
        self.num_codes = 0
        self.frame_start = 0  # first frame not emitted yet

    def push(self, z_q: torch.Tensor, min_frames: int) -> torch.Tensor:
        """Append codes (B, n, d); ``min_frames`` is a lower bound on the final T (frames past it may not exist:
        they wait for :meth:`close`). → the frames (B, m, 6) that became final (m may be 0)."""
        if z_q.shape[1]:
            self.codes = z_q if self.codes is None else torch.cat((self.codes, z_q), dim=1)
            keep = self.num_codes - self.code_start
            new = self.vqvae.transform(self.codes, self.code_start, keep)
            self.hidden = new if self.hidden is None else torch.cat((self.hidden, new), dim=1)
            self.num_codes += z_q.shape[1]
            drop = max(0, self.num_codes - self.vqvae.transformer_reach - self.code_start)
            self.codes, self.code_start = self.codes[:, drop:], self.code_start + drop
        return self._emit(min((self.num_codes - self.lookahead_codes) * self.f, min_frames), final=False)

    def close(self, num_frames: int) -> torch.Tensor:
        """The remaining frames up to ``num_frames`` (the final T; N = ceil(T / f) codes must have been pushed)."""
        return self._emit(num_frames, final=True)

    def buffer_sizes(self) -> dict[str, int]:
        """Codes and hidden states held (for checking that memory stays bounded)."""
        return {
            "pose codes": 0 if self.codes is None else self.codes.shape[1],
            "pose hidden": 0 if self.hidden is None else self.hidden.shape[1],
        }

    def _emit(self, until: int, final: bool) -> torch.Tensor:
        """Frames [frame_start, until), from the hidden states of their steps and the steps they reach."""
        f = self.f
        if self.hidden is None or until <= self.frame_start:
            batch = 1 if self.hidden is None else self.hidden.shape[0]
            return self.vqvae.pose_scale.new_zeros(batch, 0, POSE_DIM)
        frames = self.vqvae.upsample(self.hidden)  # (B, n·f, 6) from hidden_start · f on
        offset = self.hidden_start * f
        out = frames[:, self.frame_start - offset : until - offset]
        self.frame_start = until
        if not final:
            drop = max(0, until // f - self.left - self.hidden_start)
            self.hidden, self.hidden_start = self.hidden[:, drop:], self.hidden_start + drop
        return out


def streaming_decoder(vqvae: PoseVQVAE) -> StreamingPoseDecoder | CausalStreamingPoseDecoder:
    """The incremental decoder matching ``vqvae.decode``: causal or cross-faded windows."""
    return CausalStreamingPoseDecoder(vqvae) if vqvae.causal else StreamingPoseDecoder(vqvae)
