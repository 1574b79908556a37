"""``PoseVQVAEModule``: the reconstruction phase of the Learnable Head Pose Codebook (§3.2, Eq. 5, 6, 12).

Input: the ``pose`` (B, T, 6) of a stage-1 window; the relative pose is ``P_r = P − P⁰`` with ``P⁰`` the
window's first frame (``network.absolute_pose: true``, the Table 3 ablation, uses P itself).

Loss (Eq. 12): ``‖P_r − P̂_r‖² + ‖sg(E(P_r)) − z_q‖² + β‖sg(z_q) − E(P_r)‖²`` — the first term is the mean
squared error in the network's normalised pose units (0.1 rad, 1 cm by default, see
:mod:`talkinghead.models.pose_vqvae`), the others are means over code elements; with ``ema: true`` the
codebook term carries no gradient (the codebook follows EMAs) and is only logged.

Departure, the velocity term ``velocity_weight · ‖ΔP_r − ΔP̂_r‖²`` (frame-to-frame differences, the same
normalised units; ``velocity_weight: 0`` is Eq. 12 alone): with Eq. 12 alone, each code step's frames are decoded
close to the target on average but not to each other across step boundaries, so the decoded head jumps every
code step (on unseen synthetic clips, 1.5 deg/frame³ of jerk where the data has 0.03, and a 0.3 cm step of the
head's translation now and then); the term asks for the data's motion from frame to frame as well.

Metrics (``val/``, ``test/``): ``angle_error_deg`` / ``translation_error_cm`` (mean per-frame L2 reconstruction
error), ``codebook_usage`` (fraction of the codes used over the epoch, all groups) and ``perplexity`` (exp of
the entropy of the epoch's code histogram, averaged over the groups), ``loss``.
"""

from typing import Any

import torch
from torchmetrics import MeanMetric, Metric

from talkinghead.face.pose import relative_pose
from talkinghead.lightning.media import Histogram
from talkinghead.lightning.stage import StageModule
from talkinghead.metrics.pose import pose_errors
from talkinghead.models.pose_vqvae import PoseVQVAE, codebook_usage


class CodeHistogram(Metric):
    """Counts of each group's codes over an epoch (summed over ranks)."""

    def __init__(self, num_groups: int, num_codes: int):
        super().__init__()
        self.add_state("counts", torch.zeros(num_groups, num_codes), dist_reduce_fx="sum")

    def update(self, counts: torch.Tensor) -> None:
        """Add a batch's histogram (G, K) (:meth:`~talkinghead.models.pose_vqvae.VectorQuantizer.histogram`)."""
        self.counts += counts.to(self.counts.dtype)

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        return codebook_usage(self.counts)


def target_pose(pose: torch.Tensor, absolute: bool) -> torch.Tensor:
    """What the codebook models: P (absolute) or P_r = P − P⁰ with P⁰ the first frame, (B, T, 6)."""
    return pose if absolute else relative_pose(pose, pose[:, 0])


class PoseVQVAEModule(StageModule):
    """Thin training wrapper around :class:`PoseVQVAE` (see module docstring).

    Args:
        network: keyword arguments of :class:`PoseVQVAE` (sizes, codebook, ``absolute_pose``).
        reconstruction_weight: weight of the ‖P_r − P̂_r‖² term.
        velocity_weight: weight of the velocity term (module docstring); 0 = Eq. 12 alone.
        lr, weight_decay, warmup_steps: AdamW, with the learning rate ramped up linearly over the first
            ``warmup_steps`` optimizer steps of the run (0 = none).
    """

    MONITOR = ("val/angle_error_deg", "min")

    def __init__(
        self,
        network: dict[str, Any] | None = None,
        reconstruction_weight: float = 1.0,
        velocity_weight: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = PoseVQVAE(**(network or {}))
        quantizer = self.net.quantizer
        self.metrics = self.split_metrics(
            lambda: {
                "angle_error_deg": MeanMetric(),
                "translation_error_cm": MeanMetric(),
                "codebook": CodeHistogram(quantizer.num_groups, quantizer.num_codes),
            }
        )

    def forward(self, pose: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pose (B, T, 6) → the :meth:`PoseVQVAE.forward` dict on its target (relative unless absolute)."""
        return self.net(target_pose(pose, self.net.absolute_pose))

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Eq. 12 → ``(loss, {"train/…": …}, network outputs)``."""
        target = target_pose(batch["pose"], self.net.absolute_pose)
        out = self.net(target)
        reconstruction = self.net.normalized_error(out["pose"], target)
        loss = self.hparams.reconstruction_weight * reconstruction + out["commitment_loss"]
        if not self.net.quantizer.ema:
            loss = loss + out["codebook_loss"]
        logs = {"train/reconstruction": reconstruction}
        if self.hparams.velocity_weight > 0:
            velocity = self.net.normalized_error(out["pose"].diff(dim=1), target.diff(dim=1))
            loss = loss + self.hparams.velocity_weight * velocity
            logs["train/velocity"] = velocity
        logs.update(
            {"train/loss": loss, "train/codebook": out["codebook_loss"], "train/commitment": out["commitment_loss"]}
        )
        return loss, logs, {**out, "target": target}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, logs, out = self.loss(batch)
        usage, perplexity = self.net.quantizer.usage(out["indices"])
        logs.update({"train/batch_codebook_usage": usage, "train/batch_perplexity": perplexity})
        self.log_dict(logs, prog_bar=True, batch_size=batch["pose"].shape[0])
        return loss

    def _evaluate(self, batch: dict, split: str) -> None:
        loss, _, out = self.loss(batch)
        angle, translation = pose_errors(out["pose"], out["target"])
        metrics = self.metrics[split]
        metrics["angle_error_deg"].update(angle)
        metrics["translation_error_cm"].update(translation)
        metrics["codebook"].update(self.net.quantizer.histogram(out["indices"]))
        self.log(f"{split}/loss", loss, sync_dist=True, batch_size=batch["pose"].shape[0])

    def epoch_values(self, values: dict[str, object]) -> dict[str, torch.Tensor]:
        values["codebook_usage"], values["perplexity"] = values.pop("codebook")
        return values

    def log_media(self, batch: dict, datamodule: object) -> list:
        """The usage histogram of the batch's codes."""
        counts = self.net.quantizer.histogram(self(batch["pose"])["indices"]).flatten().cpu().numpy()
        title = f"codebook usage: {int((counts > 0).sum())}/{counts.size} codes"
        return [Histogram("codebook_usage", counts, title)]
