"""``FacialMotionModule``: trains the Global and Local Facial Motion Generator (§3.2, Eq. 2–4, 11).

Loss (Eq. 11): ``L = λ_bs‖β − β̂‖₁ + λ_mesh‖M − M̂_nr‖`` with ``M̂_nr = S̄ + αU_id + β̂U_exp + Ô_lip``
from the morphable model (Eq. 4; the reference pose P_ref is the same rigid motion on both sides and
is left out). ‖β − β̂‖₁ is the mean absolute blendshape error; the mesh term is the mean per-vertex
Euclidean distance (cm), with the lip vertices weighted ``1 + lip_weight``.

Optionally (``velocity_weight`` > 0, not in the paper; 0 = Eq. 11 alone) a velocity term adds the same two
distances between the frame-to-frame differences: ``λ_vel(‖Δβ − Δβ̂‖₁ + ‖ΔM − ΔM̂_nr‖)``. Eq. 11 alone is
minimised, where the speech leaves the motion uncertain, by the average motion, which barely moves; the velocity
term charges a still prediction the whole motion of the target, so the mouth keeps its amplitude and timing.
Training is teacher-forced;
validation and test run the autoregressive, cached generation of the inference network
(:class:`~talkinghead.models.audio_to_motion.AudioToMotion`) and report:

* ``blendshape_mae``: mean |β − β̂| over the 52 ARKit weights;
* ``lip_vertex_error``: per frame the max L2 error over the lip vertices, averaged (cm), and
  ``lip_vertex_error_pct``: the same in % of the mean ground-truth mouth width;
* ``mouth_opening_corr``: Pearson correlation of the inner-lip opening, predicted vs ground truth, over
  every frame of the split;
* ``upper_face_dynamics_deviation``: FDD over the eye and brow vertices (cm).
"""

from typing import Any

import torch
from torchmetrics import MeanMetric, PearsonCorrCoef

from talkinghead.lightning.media import first_audio, ncc_renders, side_by_side
from talkinghead.lightning.stage import StageModule
from talkinghead.metrics.facial_motion import (
    FaceMeasurements,
    lip_vertex_error,
    mouth_opening,
    upper_face_dynamics_deviation,
)
from talkinghead.models.audio_to_motion import AudioToMotion
from talkinghead.models.facial_motion import merge_blendshapes, split_blendshapes

METRICS = ("blendshape_mae", "lip_vertex_error", "mouth_width", "upper_face_dynamics_deviation")


class FacialMotionModule(StageModule):
    """Thin training wrapper around :class:`AudioToMotion` (see module docstring).

    Args:
        audio_encoder, audio_encoder_args, face_model, network, expression_scale: the arguments of
            :class:`AudioToMotion` (``"mel"`` or ``"wav2vec2"`` features, the morphable model, the generator's
            sizes and ablation flags, the gain inference applies by default: stored in the checkpoint, never used
            in training or validation).
        blendshape_weight, mesh_weight, lip_weight: the weights of Eq. 11 (see module docstring).
        velocity_weight: weight of the velocity term on the frame-to-frame differences (module docstring;
            0, the default, is the paper's Eq. 11 alone).
        teacher_forcing_ratio: probability that a training frame's decoder input is the ground truth rather
            than the model's own (detached) prediction (scheduled sampling; 1 = plain teacher forcing).
        speech_augmentation: the arguments of :class:`~talkinghead.audio.augmentation.SpeechAugmentation`
            (random level, noise, band limits and reverberation of the training speech), ``{}`` for its
            defaults; ``None`` (the default, the paper's setting) trains on the speech as recorded.
        lr, weight_decay, warmup_steps: AdamW, with the learning rate ramped up linearly over the first
            ``warmup_steps`` optimizer steps of the run (0 = none).

    Media: NCC renders of the predicted | ground-truth meshes (unposed, Eq. 4) of the batch's first window, a
    strip of five frames and the whole window as a video with its audio.
    """

    MONITOR = ("val/lip_vertex_error", "min")

    def __init__(
        self,
        audio_encoder: str = "mel",
        audio_encoder_args: dict[str, Any] | None = None,
        face_model: str = "builtin",
        network: dict[str, Any] | None = None,
        blendshape_weight: float = 1.0,
        mesh_weight: float = 1.0,
        lip_weight: float = 1.0,
        velocity_weight: float = 0.0,
        teacher_forcing_ratio: float = 1.0,
        speech_augmentation: dict[str, Any] | None = None,
        expression_scale: float = 1.0,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = AudioToMotion(audio_encoder, audio_encoder_args, face_model, network, expression_scale)
        self.use_speech_augmentation(speech_augmentation)
        # checkpoints rebuild the audio encoder from its stored configuration, never from the hub
        self.hparams["audio_encoder_args"] = self.model.audio_encoder.portable_args(audio_encoder_args or {})
        face = self.model.face
        self.measure = FaceMeasurements.from_model(face)
        vertex_weight = torch.ones(face.num_vertices)
        vertex_weight[face.lip_ids] += lip_weight
        self.register_buffer("vertex_weight", vertex_weight / vertex_weight.mean(), persistent=False)
        self.metrics = self.split_metrics(
            lambda: {**{name: MeanMetric() for name in METRICS}, "mouth_opening_corr": PearsonCorrCoef()}
        )

    def forward(self, audio: torch.Tensor, alpha: torch.Tensor, num_frames: int) -> dict[str, torch.Tensor]:
        """Audio (B, S) at 16 kHz + identity α (B, K) → β̂ (B, T, 52) and Ô_lip (B, T, L, 3), autoregressively."""
        return self.model(audio, alpha, num_frames)

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 11 on a teacher-forced pass; returns ``(loss, {"train/…": …})``."""
        beta, offsets, alpha = batch["beta"], batch["lip_offsets"], batch["alpha"]
        beta_lip, beta_other = split_blendshapes(beta)
        audio = self.training_speech(batch["audio"])
        features = self.model.audio_encoder(audio, beta.shape[1])
        targets = {"beta_lip": beta_lip, "beta_other": beta_other, "lip_offsets": offsets}
        ratio = self.hparams.teacher_forcing_ratio if self.training else 1.0
        out = self.model.net(features, alpha, targets, teacher_forcing_ratio=ratio)
        beta_hat = merge_blendshapes(out["beta_lip"], out["beta_other"])
        blendshape = (beta_hat - beta).abs().mean()
        meshes = self.model.meshes
        mesh_hat, mesh_true = meshes(alpha, beta_hat, out["lip_offsets"]), meshes(alpha, beta, offsets)
        mesh = ((mesh_hat - mesh_true).norm(dim=-1) * self.vertex_weight).mean()
        loss = self.hparams.blendshape_weight * blendshape + self.hparams.mesh_weight * mesh
        logged = {"train/blendshape_l1": blendshape, "train/mesh_cm": mesh}
        if self.hparams.velocity_weight > 0:
            velocity = self.velocity_loss(beta_hat, beta, mesh_hat, mesh_true)
            loss = loss + self.hparams.velocity_weight * velocity
            logged["train/velocity"] = velocity
        return loss, {"train/loss": loss, **logged}

    def velocity_loss(
        self, beta_hat: torch.Tensor, beta: torch.Tensor, mesh_hat: torch.Tensor, mesh: torch.Tensor
    ) -> torch.Tensor:
        """``‖Δβ − Δβ̂‖₁ + ‖ΔM − ΔM̂‖`` over consecutive frames: β (B, T, 52), meshes (B, T, V, 3); the mesh
        differences weighted per vertex as Eq. 11's mesh term."""
        blendshape = (beta_hat.diff(dim=1) - beta.diff(dim=1)).abs().mean()
        mesh_error = (mesh_hat.diff(dim=1) - mesh.diff(dim=1)).norm(dim=-1)
        return blendshape + (mesh_error * self.vertex_weight).mean()

    def _evaluate(self, batch: dict, split: str) -> None:
        beta, offsets, alpha = batch["beta"], batch["lip_offsets"], batch["alpha"]
        predicted = self(batch["audio"], alpha, beta.shape[1])
        mesh_hat = self.model.meshes(alpha, predicted["beta"], predicted["lip_offsets"])
        mesh = self.model.meshes(alpha, beta, offsets)
        metrics = self.metrics[split]
        metrics["blendshape_mae"].update((predicted["beta"] - beta).abs().mean(dim=(1, 2)))
        metrics["lip_vertex_error"].update(lip_vertex_error(mesh_hat, mesh, self.measure.lip_ids).flatten())
        metrics["mouth_width"].update(self.measure.mouth_width(mesh).flatten())
        metrics["upper_face_dynamics_deviation"].update(
            upper_face_dynamics_deviation(mesh_hat, mesh, self.measure.upper_face_ids).abs()
        )
        pair = self.measure.opening_pair
        metrics["mouth_opening_corr"].update(
            mouth_opening(mesh_hat, pair).flatten(), mouth_opening(mesh, pair).flatten()
        )
        self.log(f"{split}/loss", self.loss(batch)[0], sync_dist=True, batch_size=beta.shape[0])

    def epoch_values(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        values["lip_vertex_error_pct"] = 100 * values["lip_vertex_error"] / values.pop("mouth_width")
        return values

    def log_media(self, batch: dict, datamodule: object) -> list:
        length = batch["beta"].shape[1]
        alpha = batch["alpha"][:1]
        predicted = self(batch["audio"][:1], alpha, length)
        meshes = self.model.meshes(
            alpha,
            torch.cat((predicted["beta"], batch["beta"][:1])),
            torch.cat((predicted["lip_offsets"], batch["lip_offsets"][:1])),
        )
        renders = ncc_renders(meshes.flatten(0, 1), self.model.face).unflatten(0, (2, length))
        return side_by_side("mesh_predicted_vs_truth", renders[0], renders[1], first_audio(batch))
