"""``ObservedRange``: the per-dimension range of a network's condition met in training, and a clamp to it after.

Networks trained on a small corpus of identities (the embedded configs) meet real faces whose fitted α lies far
outside what training covered; a condition clamped to the training range conditions such a face like the nearest
edge of that range instead of extrapolating (the pose mapper's and the facial-motion generator's
``condition_range``).
"""

import torch
from torch import nn


class ObservedRange(nn.Module):
    """Per-dimension ``[low, high]`` of the values seen in training mode; outside training, values are clamped to it.

    ``forward`` takes (..., dim) and returns it unchanged in training mode (the buffers widen to cover it) and clamped
    in eval mode. The buffers start empty (``low`` +∞, ``high`` −∞): a dimension never observed is left as it is.
    A weight average that includes buffers (Lightning's ``EMAWeightAveraging`` and its variants) averages these too;
    the range stops widening once training has met every item, and the average reaches it as it forgets the first
    steps.

    Under DDP every process records its own batches; :class:`~talkinghead.lightning.stage.StageModule` widens each
    process' ranges to the union of all of theirs after every step.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("low", torch.full((dim,), float("inf")))
        self.register_buffer("high", torch.full((dim,), float("-inf")))

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        if self.training:
            seen = values.detach().reshape(-1, values.shape[-1])
            self.widen(seen.min(0).values, seen.max(0).values)
            return values
        clamped = torch.minimum(torch.maximum(values, self.low), self.high)
        return torch.where(self.low <= self.high, clamped, values)

    @torch.no_grad()
    def widen(self, low: torch.Tensor, high: torch.Tensor) -> None:
        """Extend the range to cover ``[low, high]`` (e.g. the ranges of the other processes of a distributed run)."""
        self.low.copy_(torch.minimum(self.low, low))
        self.high.copy_(torch.maximum(self.high, high))
