"""The morphable face model of Eq. 1 / Eq. 4 behind one interface for every source.

``S = S̄ + α U_id + β U_exp (+ O_lip on the lip vertices)``.  The bases are stored per vertex,
``identity_basis`` as (K_id, N, 3) and ``expression_basis`` as (52, N, 3); :attr:`U_id` and
:attr:`U_exp` give the paper's (3N × K) matrices. Two sources build one: the project's own model on
the MediaPipe topology (:func:`talkinghead.face.builtin.builtin_morphable_model`) and FaceVerse, the
paper's model, from the user's file (:func:`talkinghead.face.faceverse.load_faceverse`).
"""

from collections.abc import Mapping, Sequence

import torch
from torch import nn


class MorphableModel(nn.Module):
    """A linear face model; every array is a buffer, so ``.to(device)`` moves the model.

    Args:
        mean_shape: S̄, (N, 3).
        identity_basis: U_id per vertex, (K_id, N, 3).
        expression_basis: U_exp per vertex, (K_exp, N, 3); K_exp = 52 ARKit blendshapes.
        triangles: (F, 3) vertex ids, counter-clockwise seen from the camera.
        expression_names: the K_exp blendshape names, in basis order.
        lip_ids: the L vertices that carry the lip offsets O_lip of Eq. 3/4.
        regions: further named vertex-id sets (``eye_left``, ``brow_right``, …).
        landmark_ids: vertex ids of the model's 2-D landmarks (fitting, heatmaps).
    """

    def __init__(
        self,
        mean_shape: torch.Tensor,
        identity_basis: torch.Tensor,
        expression_basis: torch.Tensor,
        triangles: torch.Tensor,
        expression_names: Sequence[str],
        lip_ids: torch.Tensor,
        regions: Mapping[str, torch.Tensor] | None = None,
        landmark_ids: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        n = mean_shape.shape[0]
        if mean_shape.shape != (n, 3):
            raise ValueError(f"mean_shape must be (N, 3), got {tuple(mean_shape.shape)}")
        for name, basis in (("identity_basis", identity_basis), ("expression_basis", expression_basis)):
            if basis.ndim != 3 or basis.shape[1:] != (n, 3):
                raise ValueError(f"{name} must be (K, {n}, 3), got {tuple(basis.shape)}")
        if len(expression_names) != expression_basis.shape[0]:
            raise ValueError("expression_names must name every expression basis vector")
        self.expression_names = tuple(expression_names)
        self.register_buffer("mean_shape", mean_shape.float())
        self.register_buffer("identity_basis", identity_basis.float())
        self.register_buffer("expression_basis", expression_basis.float())
        self.register_buffer("triangles", triangles.long())
        self.register_buffer("lip_ids", lip_ids.long())
        if landmark_ids is None:
            landmark_ids = torch.arange(n)
        self.register_buffer("landmark_ids", landmark_ids.long())
        self.region_names = tuple(sorted(regions or {}))
        for name in self.region_names:
            self.register_buffer(f"region_{name}", regions[name].long())

    @property
    def num_vertices(self) -> int:
        return self.mean_shape.shape[0]

    @property
    def num_identity(self) -> int:
        return self.identity_basis.shape[0]

    @property
    def num_expression(self) -> int:
        return self.expression_basis.shape[0]

    @property
    def num_lip_vertices(self) -> int:
        return self.lip_ids.shape[0]

    @property
    def U_id(self) -> torch.Tensor:  # noqa: N802 - the paper's symbol
        """Identity basis as the paper's (3N, K_id) matrix (x, y, z interleaved per vertex)."""
        return self.identity_basis.reshape(self.num_identity, -1).T

    @property
    def U_exp(self) -> torch.Tensor:  # noqa: N802 - the paper's symbol
        """Expression basis as the paper's (3N, 52) matrix."""
        return self.expression_basis.reshape(self.num_expression, -1).T

    def region(self, name: str) -> torch.Tensor:
        """Vertex ids of a named region (``lips`` is always :attr:`lip_ids`)."""
        if name == "lips":
            return self.lip_ids
        if name not in self.region_names:
            raise KeyError(f"unknown region {name!r}; known: lips, {', '.join(self.region_names)}")
        return getattr(self, f"region_{name}")

    def expression_index(self, name: str) -> int:
        try:
            return self.expression_names.index(name)
        except ValueError:
            raise KeyError(f"unknown blendshape {name!r}") from None

    def vertices(
        self,
        alpha: torch.Tensor | None = None,
        beta: torch.Tensor | None = None,
        lip_offsets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Unposed vertices of Eq. 1, plus the lip offsets of Eq. 4.

        Args:
            alpha: identity coefficients (..., K_id) or None (mean identity).
            beta: expression coefficients (..., 52) or None (neutral).
            lip_offsets: O_lip (..., L, 3) added to :attr:`lip_ids`, or None.

        The leading dimensions of the given arguments broadcast against each other, so
        ``alpha`` (B, K_id) with ``beta`` (B, T, 52) needs ``alpha[:, None]``.
        Returns (..., N, 3).
        """
        shape = self.mean_shape
        if alpha is not None:
            shape = shape + torch.einsum("...k,knc->...nc", alpha.to(shape.dtype), self.identity_basis)
        if beta is not None:
            shape = shape + torch.einsum("...k,knc->...nc", beta.to(shape.dtype), self.expression_basis)
        if lip_offsets is not None:
            lead = torch.broadcast_shapes(shape.shape[:-2], lip_offsets.shape[:-2])
            shape = shape.expand(*lead, self.num_vertices, 3).clone()
            shape[..., self.lip_ids, :] += lip_offsets.to(shape.dtype)
        return shape
