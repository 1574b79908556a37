"""``FacialMotionModule``: trains the Global and Local Facial Motion Generator (§3.2, Eq. 2–4, 11).

Loss (Eq. 11): ``L = λ_bs‖β − β̂‖₁ + λ_mesh‖M − M̂_nr‖`` with ``M̂_nr = S̄ + αU_id + β̂U_exp + Ô_lip``
from the morphable model (Eq. 4; the reference pose P_ref is the same rigid motion on both sides and
is left out). ‖β − β̂‖₁ is the mean absolute blendshape error; the mesh term is the mean per-vertex
Euclidean distance (cm), with the lip vertices weighted ``1 + lip_weight``. Training is teacher-forced;
validation and test run the autoregressive, cached :meth:`FacialMotionGenerator.generate` and report:

* ``blendshape_mae``: mean |β − β̂| over the 52 ARKit weights;
* ``lip_vertex_error``: per frame the max L2 error over the lip vertices, averaged (cm), and
  ``lip_vertex_error_pct``: the same in % of the mean ground-truth mouth width;
* ``mouth_opening_corr``: Pearson correlation of the inner-lip opening, predicted vs ground truth, over
  every frame of the split;
* ``upper_face_dynamics_deviation``: FDD over the eye and brow vertices (cm).
"""

import torch
from torchmetrics import MeanMetric, PearsonCorrCoef

from talkinghead.audio import build_audio_encoder
from talkinghead.face import builtin_identity_std, load_morphable_model
from talkinghead.lightning.stage import StageModule
from talkinghead.metrics.facial_motion import (
    FaceMeasurements,
    lip_vertex_error,
    mouth_opening,
    upper_face_dynamics_deviation,
)
from talkinghead.models.facial_motion import FacialMotionGenerator, merge_blendshapes, split_blendshapes

METRICS = ("blendshape_mae", "lip_vertex_error", "mouth_width", "upper_face_dynamics_deviation")


class FacialMotionModule(StageModule):
    """Thin training wrapper around :class:`FacialMotionGenerator` (see module docstring).

    Args:
        audio_encoder: ``"mel"`` (weight-free log-mel, the embedded configs) or ``"wav2vec2"`` (the paper's).
        audio_encoder_args: keyword arguments of the encoder (e.g. ``name_or_path`` for wav2vec2).
        face_model: ``"builtin"`` or the path of a FaceVerse ``.npy`` file.
        network: keyword arguments of :class:`FacialMotionGenerator` (sizes, ablation flags).
        blendshape_weight, mesh_weight, lip_weight: the weights of Eq. 11 (see module docstring).
        teacher_forcing_ratio: probability that a training frame's decoder input is the ground truth rather
            than the model's own (detached) prediction (scheduled sampling; 1 = plain teacher forcing).
        lr, weight_decay: AdamW.
    """

    def __init__(
        self,
        audio_encoder: str = "mel",
        audio_encoder_args: dict | None = None,
        face_model: str = "builtin",
        network: dict | None = None,
        blendshape_weight: float = 1.0,
        mesh_weight: float = 1.0,
        lip_weight: float = 1.0,
        teacher_forcing_ratio: float = 1.0,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.face = load_morphable_model(face_model)
        self.measure = FaceMeasurements.from_model(self.face)
        self.audio_encoder = build_audio_encoder(audio_encoder, **(audio_encoder_args or {}))
        self.net = FacialMotionGenerator(
            audio_dim=self.audio_encoder.output_dim,
            identity_dim=self.face.num_identity,
            num_lip_vertices=self.face.num_lip_vertices,
            identity_std=builtin_identity_std(self.face.num_identity) if face_model == "builtin" else None,
            **(network or {}),
        )
        vertex_weight = torch.ones(self.face.num_vertices)
        vertex_weight[self.face.lip_ids] += lip_weight
        self.register_buffer("vertex_weight", vertex_weight / vertex_weight.mean(), persistent=False)
        self.metrics = torch.nn.ModuleDict(
            {split: torch.nn.ModuleDict({name: MeanMetric() for name in METRICS}) for split in ("val", "test")}
        )
        self.opening = torch.nn.ModuleDict({split: PearsonCorrCoef() for split in ("val", "test")})

    def forward(self, audio: torch.Tensor, alpha: torch.Tensor, num_frames: int) -> dict[str, torch.Tensor]:
        """Audio (B, S) at 16 kHz + identity α (B, K) → β̂ (B, T, 52) and Ô_lip (B, T, L, 3), autoregressively."""
        features = self.audio_encoder(audio, num_frames)
        out = self.net.generate(features, alpha)
        return {"beta": merge_blendshapes(out["beta_lip"], out["beta_other"]), "lip_offsets": out["lip_offsets"]}

    def meshes(self, alpha: torch.Tensor, beta: torch.Tensor, lip_offsets: torch.Tensor) -> torch.Tensor:
        """Unposed meshes of Eq. 4, (B, T, N, 3)."""
        return self.face.vertices(alpha[:, None], beta, lip_offsets)

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 11 on a teacher-forced pass; returns ``(loss, {"train/…": …})``."""
        beta, offsets, alpha = batch["beta"], batch["lip_offsets"], batch["alpha"]
        beta_lip, beta_other = split_blendshapes(beta)
        features = self.audio_encoder(batch["audio"], beta.shape[1])
        targets = {"beta_lip": beta_lip, "beta_other": beta_other, "lip_offsets": offsets}
        ratio = self.hparams.teacher_forcing_ratio if self.training else 1.0
        out = self.net(features, alpha, targets, teacher_forcing_ratio=ratio)
        beta_hat = merge_blendshapes(out["beta_lip"], out["beta_other"])
        blendshape = (beta_hat - beta).abs().mean()
        distance = (self.meshes(alpha, beta_hat, out["lip_offsets"]) - self.meshes(alpha, beta, offsets)).norm(dim=-1)
        mesh = (distance * self.vertex_weight).mean()
        loss = self.hparams.blendshape_weight * blendshape + self.hparams.mesh_weight * mesh
        return loss, {"train/loss": loss, "train/blendshape_l1": blendshape, "train/mesh_cm": mesh}

    def _evaluate(self, batch: dict, split: str) -> None:
        beta, offsets, alpha = batch["beta"], batch["lip_offsets"], batch["alpha"]
        predicted = self(batch["audio"], alpha, beta.shape[1])
        mesh_hat = self.meshes(alpha, predicted["beta"], predicted["lip_offsets"])
        mesh = self.meshes(alpha, beta, offsets)
        metrics = self.metrics[split]
        metrics["blendshape_mae"].update((predicted["beta"] - beta).abs().mean(dim=(1, 2)))
        metrics["lip_vertex_error"].update(lip_vertex_error(mesh_hat, mesh, self.measure.lip_ids).flatten())
        metrics["mouth_width"].update(self.measure.mouth_width(mesh).flatten())
        metrics["upper_face_dynamics_deviation"].update(
            upper_face_dynamics_deviation(mesh_hat, mesh, self.measure.upper_face_ids).abs()
        )
        pair = self.measure.opening_pair
        self.opening[split].update(mouth_opening(mesh_hat, pair).flatten(), mouth_opening(mesh, pair).flatten())
        self.log(f"{split}/loss", self.loss(batch)[0], batch_size=beta.shape[0])

    def _log_epoch(self, split: str) -> None:
        values = {name: metric.compute() for name, metric in self.metrics[split].items()}
        values["lip_vertex_error_pct"] = 100 * values["lip_vertex_error"] / values.pop("mouth_width")
        values["mouth_opening_corr"] = self.opening[split].compute()
        self.log_dict({f"{split}/{name}": value for name, value in values.items()}, prog_bar=split == "val")
        for metric in (*self.metrics[split].values(), self.opening[split]):
            metric.reset()
