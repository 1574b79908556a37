"""Global and Local Facial Motion Generator (VividTalk §3.2, Eq. 2–4; trained with Eq. 11).

Audio features ``A`` (B, T, C) at video fps and the reference identity ``α`` (B, K) drive three branches:

* ``β_lip`` (Eq. 2, i = lip): the 28 speech-driven ARKit blendshapes (``jaw*``, ``mouth*``, ``cheekPuff``,
  :data:`~talkinghead.face.expression_basis.LIP_BLENDSHAPES`);
* ``β_other`` (Eq. 2, i = other): the remaining 24 (brows, eyes, cheek squint, nose, tongue,
  :data:`~talkinghead.face.expression_basis.OTHER_BLENDSHAPES`);
* ``O_lip`` (Eq. 3): per-frame offsets (L, 3) of the L lip vertices, in cm, the fine-grained lip motion.

"The audio feature A and the personal style embedding z_style are added": the memory is
``A' = AudioProjection(A) + z_style`` with ``z_style = MLP(α / σ_α)`` (σ_α the identity prior std, e.g.
:func:`talkinghead.face.builtin_identity_std`). Each branch is a :class:`~talkinghead.models.attention.
CausalDecoder` over its own past outputs (shifted right, a learned start token at frame 0) with aligned
cross-attention to ``A'``; Eq. 4 then assembles the mesh from ``(β_lip, β_other)`` and ``O_lip``.

Output ranges: blendshape heads end in a sigmoid, so β ∈ (0, 1) like ARKit weights (the fit's β is clamped
to [0, 1]); the offset head is linear, ``O = offset_scale · head(h)`` with ``offset_scale`` = 0.1 cm, so the
network works in units of ~typical offsets (≤ 0.3 cm). Previous outputs are fed back in the same units.

Long utterances (a departure: the paper does not discuss them). Training sees windows of ``data.window``
frames; inference decodes whole utterances with a key/value cache. ``max_context`` (= the training window in
the configs) bounds every decoder's context to the last ``max_context`` frames, so a 60-s utterance (1500
frames) is decoded with the attention spans, biases and periodic positions of training (FaceFormer's biased
causal mask and PPE are periodic / relative, see :mod:`~talkinghead.models.attention`).

Condition range (a departure for small corpora; ``condition_range = False`` is the paper): the per-dimension range
of ``α / σ_α`` met in training is recorded (:class:`~talkinghead.models.observed_range.ObservedRange`), and outside
training α is clamped to it before z_style, as the pose mapper clamps its conditions
(:mod:`~talkinghead.models.pose_mapper`). The embedded corpora's identities span −4.0 to +3.7 prior standard
deviations per coordinate; real portraits are fitted 1.6–4.9 (root mean square) from the mean face, with 8–32 % of
their coordinates outside that span, and z_style extrapolated to them damps the mouth: with the clamp, 21 real
portraits speaking 8 s of two real recordings open their mouths 5–9 % wider on average (18 of 21 wider for each).

Ablations of Fig. 7: ``use_blendshapes=False`` (vertex-offset only) and ``use_vertex_offsets=False``
(blendshape only); a disabled branch is not built and returns zeros of its shape.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from talkinghead.face.expression_basis import ARKIT_BLENDSHAPES, LIP_BLENDSHAPES, OTHER_BLENDSHAPES
from talkinghead.models.attention import CausalDecoder, DecoderCache, concat_memory_kv
from talkinghead.models.blocks import AudioProjection
from talkinghead.models.branch_stack import BranchStack
from talkinghead.models.observed_range import ObservedRange

_LIP_INDEX = [ARKIT_BLENDSHAPES.index(name) for name in LIP_BLENDSHAPES]
_OTHER_INDEX = [ARKIT_BLENDSHAPES.index(name) for name in OTHER_BLENDSHAPES]
_MERGE_INDEX = sorted(range(len(ARKIT_BLENDSHAPES)), key=(_LIP_INDEX + _OTHER_INDEX).__getitem__)


def split_blendshapes(beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """β (..., 52) in ARKit order → (β_lip (..., 28), β_other (..., 24)) in the name lists' order."""
    return beta[..., _LIP_INDEX], beta[..., _OTHER_INDEX]


def merge_blendshapes(beta_lip: torch.Tensor, beta_other: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`split_blendshapes`: (β_lip, β_other) → β (..., 52) in ARKit order (differentiable)."""
    return torch.cat((beta_lip, beta_other), dim=-1)[..., _MERGE_INDEX]


class MotionBranch(nn.Module):
    """One branch Φ of Eq. 2/3: embed own previous outputs → :class:`CausalDecoder` → output head.

    ``sigmoid=True``: values in (0, 1) fed back as they are; otherwise ``value = scale · head(h)`` and fed
    back as ``value / scale``. The generator runs its branches side by side
    (:class:`~talkinghead.models.branch_stack.BranchStack`); :meth:`start`, :meth:`embed` and :meth:`output`
    are one branch's own steps, which the stacked pass reproduces.
    """

    def __init__(self, out_dim: int, d_model: int, *, sigmoid: bool, scale: float = 1.0, **decoder_kwargs):
        super().__init__()
        self.sigmoid = sigmoid
        self.scale = scale
        self.input_proj = nn.Linear(out_dim, d_model)
        self.start_token = nn.Parameter(torch.randn(d_model) * 0.02)
        self.decoder = CausalDecoder(d_model, **decoder_kwargs)
        self.head = nn.Linear(d_model, out_dim)

    def embed(self, previous: torch.Tensor) -> torch.Tensor:
        """Previous output values (B, T, out) → embeddings (B, T, D)."""
        return self.input_proj(previous if self.sigmoid else previous / self.scale)

    def output(self, hidden: torch.Tensor) -> torch.Tensor:
        raw = self.head(hidden)
        return torch.sigmoid(raw) if self.sigmoid else raw * self.scale

    def start(self, batch: int) -> torch.Tensor:
        return self.start_token.expand(batch, 1, -1)


@dataclass
class GenerationState:
    """Incremental-decoding state of :meth:`FacialMotionGenerator.start` / :meth:`~FacialMotionGenerator.step`."""

    branches: BranchStack  # the branches' weights, stacked when decoding starts
    memory_kv: list | None  # per-layer cross-attention K/V of A', branches folded into the batch
    cache: DecoderCache  # the branches' self-attention K/V, folded likewise
    previous: torch.Tensor | None  # last outputs (N, B, 1, widest), None before frame 0
    position: int
    length: int  # frames of A' known so far (all of them offline; growing while streaming)
    memory_start: int = 0  # the frame of memory_kv's first entry (streaming trims the past)


class FacialMotionGenerator(nn.Module):
    """Audio + identity → (β_lip, β_other, O_lip) per frame (Eq. 2, 3). Pure ``nn.Module``.

    Args:
        audio_dim: C of the audio features A (768 for wav2vec2-base), which are at video fps.
        identity_dim: K of α (40 for the built-in model).
        num_lip_blendshapes / num_other_blendshapes: sizes of β_lip / β_other (28 / 24, the ARKit split).
        num_lip_vertices: L lip vertices of O_lip.
        d_model, num_heads, num_layers, ff_dim, dropout: decoder sizes (per branch; ff_dim defaults to 4·d).
        period: PPE and mask period p in frames (25 = 1 s at 25 fps).
        audio_window: (w_past, w_future) frames of the cross-attention alignment mask.
        max_context: frames of context the decoders see, self-attention and audio alike (a sliding window with a
            bounded key/value cache, :mod:`~talkinghead.models.attention`); the configs set it to the training
            window ``data.window``. None = every past frame (unbounded, for older checkpoints).
        use_blendshapes / use_vertex_offsets: the Fig. 7 ablations (blendshape-only, vertex-offset-only).
        audio_conv_kernel: odd kernel of the audio encoder's temporal conv; it widens the audio a frame
            depends on by ``kernel // 2`` on each side (see :attr:`audio_context`).
        audio_feedforward_layers: residual position-wise feed-forward blocks after that conv
            (:class:`~talkinghead.models.blocks.AudioProjection`); they leave :attr:`audio_context` as it is.
        audio_hidden: width of a hidden layer in the audio projection (a two-layer MLP instead of one Linear;
            None = one Linear); position-wise too.
        offset_scale: cm per network unit of the offset branch.
        identity_std: (K,) prior std of α used to normalise it (None = no normalisation); saved as a buffer.
        condition_range: record the range of ``α / σ_α`` in training and clamp α to it outside training
            (module docstring); False = the paper.
    """

    def __init__(
        self,
        audio_dim: int,
        identity_dim: int = 40,
        num_lip_blendshapes: int = len(LIP_BLENDSHAPES),
        num_other_blendshapes: int = len(OTHER_BLENDSHAPES),
        num_lip_vertices: int = 40,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int | None = None,
        dropout: float = 0.1,
        period: int = 25,
        audio_window: Sequence[int] = (2, 2),
        max_context: int | None = None,
        use_blendshapes: bool = True,
        use_vertex_offsets: bool = True,
        audio_conv_kernel: int = 3,
        audio_feedforward_layers: int = 0,
        audio_hidden: int | None = None,
        offset_scale: float = 0.1,
        identity_std: Sequence[float] | torch.Tensor | None = None,
        condition_range: bool = False,
    ):
        super().__init__()
        if not (use_blendshapes or use_vertex_offsets):
            raise ValueError("at least one of use_blendshapes / use_vertex_offsets must be enabled")
        self.num_lip_blendshapes = num_lip_blendshapes
        self.num_other_blendshapes = num_other_blendshapes
        self.num_lip_vertices = num_lip_vertices
        self.max_context = max_context
        std = torch.ones(identity_dim) if identity_std is None else torch.as_tensor(identity_std, dtype=torch.float32)
        if std.shape != (identity_dim,):
            raise ValueError(f"identity_std must have shape ({identity_dim},), got {tuple(std.shape)}")
        self.register_buffer("identity_std", std.clone())
        self.condition_range = ObservedRange(identity_dim) if condition_range else None

        self.audio_encoder = AudioProjection(
            audio_dim, d_model, audio_conv_kernel, dropout, audio_feedforward_layers, audio_hidden
        )
        self.style = nn.Sequential(nn.Linear(identity_dim, d_model), nn.GELU(), nn.Linear(d_model, d_model))
        decoder = dict(
            num_heads=num_heads,
            num_layers=num_layers,
            ff_dim=ff_dim or 4 * d_model,
            dropout=dropout,
            period=period,
            audio_window=tuple(audio_window),
            max_context=max_context,
        )
        self.audio_window = tuple(audio_window)
        branches = {}
        if use_blendshapes:
            branches["beta_lip"] = MotionBranch(num_lip_blendshapes, d_model, sigmoid=True, **decoder)
            branches["beta_other"] = MotionBranch(num_other_blendshapes, d_model, sigmoid=True, **decoder)
        if use_vertex_offsets:
            branches["lip_offsets"] = MotionBranch(
                num_lip_vertices * 3, d_model, sigmoid=False, scale=offset_scale, **decoder
            )
        self.branches = nn.ModuleDict(branches)

    @property
    def audio_context(self) -> tuple[int, int]:
        """(past, future) audio frames that output frame t can depend on through cross-attention + conv."""
        radius = self.audio_encoder.radius
        return self.audio_window[0] + radius, self.audio_window[1] + radius

    def memory(self, audio_features: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """A' = AudioProjection(A) + z_style(α): (B, T, C), (B, K) → (B, T, D)."""
        alpha = alpha / self.identity_std
        if self.condition_range is not None:
            alpha = self.condition_range(alpha)
        z_style = self.style(alpha)
        return self.audio_encoder(audio_features) + z_style[:, None]

    def _flat(self, name: str, value: torch.Tensor) -> torch.Tensor:
        return value.flatten(2) if name == "lip_offsets" else value  # (B, T, L, 3) → (B, T, 3L)

    def _outputs(self, values: dict[str, torch.Tensor], batch: int, length: int, ref: torch.Tensor) -> dict:
        """Branch outputs (B, T, out) → the output dict, zeros for disabled branches."""
        sizes = {
            "beta_lip": (self.num_lip_blendshapes,),
            "beta_other": (self.num_other_blendshapes,),
            "lip_offsets": (self.num_lip_vertices, 3),
        }
        return {
            name: values[name].reshape(batch, length, *size) if name in values else ref.new_zeros(batch, length, *size)
            for name, size in sizes.items()
        }

    def forward(
        self,
        audio_features: torch.Tensor,
        alpha: torch.Tensor,
        targets: dict[str, torch.Tensor] | None = None,
        teacher_forcing_ratio: float = 1.0,
    ) -> dict[str, torch.Tensor]:
        """Teacher-forced decoding (targets given) or differentiable autoregressive decoding (targets None).

        ``targets``: ``beta_lip`` (B, T, 28), ``beta_other`` (B, T, 24), ``lip_offsets`` (B, T, L, 3) for the
        enabled branches (T ≤ the audio's T; the audio beyond T is still seen through the look-ahead). Frame
        t's prediction sees the targets of frames < t. ``teacher_forcing_ratio`` < 1
        (training only) is scheduled sampling in its one-pass parallel form: a no-grad teacher-forced pass
        gives predictions, and each frame's input is the target with that probability, else the detached
        prediction. Returns ``beta_lip`` (B, T, 28), ``beta_other`` (B, T, 24), ``lip_offsets`` (B, T, L, 3).
        """
        if targets is None:
            return self._autoregressive(audio_features, alpha, self.max_context)
        memory = self.memory(audio_features, alpha)
        branches = BranchStack(list(self.branches.values()))
        memory_kv = branches.memory_kv(memory)
        inputs = branches.stack([self._flat(name, targets[name]) for name in self.branches])
        batch, length = inputs.shape[1:3]  # length may be a prefix of the audio's
        if self.training and teacher_forcing_ratio < 1.0:
            with torch.no_grad():
                guesses = branches.teacher_forced(inputs, memory_kv)
            keep = torch.rand(batch, length, 1, device=memory.device) < teacher_forcing_ratio
            inputs = torch.where(keep, inputs, guesses)
        return self._outputs(self._unstack(branches, branches.teacher_forced(inputs, memory_kv)), batch, length, memory)

    def _unstack(self, branches: BranchStack, stacked: torch.Tensor) -> dict[str, torch.Tensor]:
        """Stacked values (N, B, T, widest) → branch name → (B, T, out)."""
        return {
            name: stacked[i, ..., :width]
            for i, (name, width) in enumerate(zip(self.branches, branches.widths, strict=True))
        }

    @torch.no_grad()
    def generate(
        self, audio_features: torch.Tensor, alpha: torch.Tensor, max_context: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Autoregressive inference with a key/value cache, one step per frame, any length T.

        ``max_context`` (default: the constructor's) bounds the cached self-attention frames; a value smaller
        than the one trained with is an approximation (exact while T ≤ max_context).
        """
        return self._autoregressive(audio_features, alpha, max_context or self.max_context)

    def _autoregressive(self, audio_features, alpha, max_context) -> dict[str, torch.Tensor]:
        state = self.start(audio_features, alpha, max_context)
        frames = [self.step(state) for _ in range(state.length)]
        return {name: torch.cat([frame[name] for frame in frames], dim=1) for name in frames[0]}

    def start(self, audio_features: torch.Tensor, alpha: torch.Tensor, max_context: int | None = None):
        """Begin incremental decoding: computes A' and its cross-attention K/V once → :class:`GenerationState`."""
        branches = BranchStack(list(self.branches.values()))
        return GenerationState(
            branches=branches,
            memory_kv=branches.memory_kv(self.memory(audio_features, alpha)),
            cache=DecoderCache(max_context),
            previous=None,
            position=0,
            length=audio_features.shape[1],
        )

    def start_stream(self, alpha: torch.Tensor, max_context: int | None = None) -> GenerationState:
        """Begin incremental decoding of audio that arrives over time: no A' yet; :meth:`extend` appends frames
        of it (:meth:`memory` of a window of audio features), :meth:`trim` forgets what no later step attends to."""
        return GenerationState(
            branches=BranchStack(list(self.branches.values())),
            memory_kv=None,
            cache=DecoderCache(max_context or self.max_context),
            previous=None,
            position=0,
            length=0,
        )

    def extend(self, state: GenerationState, memory: torch.Tensor) -> None:
        """Append the next frames of A' (B, n, D) to the state's cross-attention K/V."""
        new = state.branches.memory_kv(memory)
        state.memory_kv = new if state.memory_kv is None else concat_memory_kv(state.memory_kv, new)
        state.length += memory.shape[1]

    def trim(self, state: GenerationState) -> None:
        """Drop the A' frames before ``position − w_past``: no later step's alignment window reaches them."""
        drop = max(0, state.position - self.audio_window[0]) - state.memory_start
        if drop <= 0 or state.memory_kv is None:
            return
        state.memory_kv = [(k[:, :, drop:], v[:, :, drop:]) for k, v in state.memory_kv]
        state.memory_start += drop

    def step(self, state: GenerationState) -> dict[str, torch.Tensor]:
        """Decode frame ``state.position`` → output dict with T = 1 (the branches side by side,
        :class:`~talkinghead.models.branch_stack.BranchStack`)."""
        if state.position >= state.length:
            raise IndexError(f"all {state.length} frames are decoded")
        stacked = state.branches.step(state.previous, state.position, state.memory_kv, state.cache, state.memory_start)
        state.previous = stacked
        state.position += 1
        return self._outputs(self._unstack(state.branches, stacked), stacked.shape[1], 1, stacked)
