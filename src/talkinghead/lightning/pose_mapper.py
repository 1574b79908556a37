"""``PoseMapperModule``: the mapping phase of the Learnable Head Pose Codebook (§3.2, Eq. 7, 13).

The PoseVQVAE of the reconstruction phase is loaded from a :class:`~talkinghead.lightning.pose_vqvae.
PoseVQVAEModule` checkpoint (``vqvae_checkpoint``; its ``hyper_parameters["network"]`` rebuild the network,
its ``net.*`` weights are loaded with every missing/unexpected key reported as an error) into the inference
network :class:`~talkinghead.models.head_pose.HeadPoseGenerator`, which keeps it frozen as a whole — encoder,
codebook and decoder. Its weights are also stored in this module's checkpoints (``model.vqvae.*``) and its
network arguments in the hyperparameters (``vqvae_network``, set by the constructor), so a mapper checkpoint
is self-contained: it reloads the same frozen stage even where ``vqvae_checkpoint`` no
longer exists (inference from a folder of checkpoints). ``absolute_pose`` is inherited from the VQ-VAE (a
codebook of P or of P − P⁰).

Loss (Eq. 13): ``‖P_r − P̂_r‖² + ‖Ẑ − sg(Z_q)‖²`` where

* ``Z_q = q(E(P_r))`` are the codes of the **ground-truth** pose through the frozen encoder and codebook
  (they are also the teacher-forced inputs of Φ_map);
* ``P̂_r = D(q(Ẑ))`` from the teacher-forced Ẑ; q is made differentiable by the straight-through estimator
  (``Ẑ + sg(q(Ẑ) − Ẑ)``) so the pose term reaches Φ_map through the frozen decoder;
* ‖P_r − P̂_r‖² is the MSE in the VQ-VAE's normalised pose units, ‖Ẑ − sg(Z_q)‖² a mean over elements.

Departure, the code term ``code_weight · CE(softmax(−‖Ẑ − z_k‖²), index(Z_q))``: Eq. 13's two regression
terms alone pull Ẑ towards the conditional *mean* of the plausible codes, whose nearest code is a code of
average motion, so sampled sequences had only ~⅔ of the data's head-pose variance (HPD −36 %, raising the
temperature did not help). The cross-entropy over the same distance logits the sampler uses
(:meth:`~talkinghead.models.pose_mapper.PoseMapper.sample`) makes ``softmax(−dist² / 1)`` a calibrated
distribution over the next code, so sampling at temperature 1 reproduces the data's spread. The paper's
loss is ``code_weight: 0``.

Metrics (``val/``, ``test/``), on autoregressive generation from the window's audio, α and P⁰:

* ``angle_error_deg`` / ``translation_error_cm``: reconstruction error of the deterministic (temperature 0)
  sequence vs the ground truth (mean per-frame L2);
* ``hpd_generated`` / ``hpd_ground_truth`` (deg², :func:`~talkinghead.metrics.pose.head_pose_diversity`) on
  the absolute poses ``P⁰ + P̂_r`` of the sampled sequences (``sample_temperature``, ``sample_top_k``) and of
  the data;
* ``diversity_deg`` / ``diversity_cm``: mean pairwise distance between ``num_eval_seeds`` sampled sequences
  from the same input (fixed seeds 0 … S−1, so validation is reproducible);
* ``jerk_deg`` / ``jerk_cm``: mean third-difference magnitude of the sampled sequences (per frame³).
"""

import logging
from pathlib import Path
from typing import Any

import torch
from torchmetrics import MeanMetric

from talkinghead.face.builtin import builtin_morphable_model
from talkinghead.face.pose import apply_pose
from talkinghead.lightning.media import first_audio, ncc_renders, side_by_side
from talkinghead.lightning.pose_vqvae import target_pose
from talkinghead.lightning.stage import ConfigurationError, StageModule
from talkinghead.metrics.pose import head_pose_diversity, mean_jerk, pose_errors, seed_diversity
from talkinghead.models.checkpoints import load_strict, read_checkpoint, substate
from talkinghead.models.head_pose import HeadPoseGenerator

log = logging.getLogger(__name__)

METRICS = ("angle_error_deg", "translation_error_cm", "hpd_generated", "hpd_ground_truth", "jerk_deg", "jerk_cm")
DIVERSITY_METRICS = ("diversity_deg", "diversity_cm")


class PoseMapperModule(StageModule):
    """Thin training wrapper around :class:`HeadPoseGenerator`, whose VQ-VAE is frozen (module docstring).

    Args:
        vqvae_checkpoint: path of the ``PoseVQVAEModule`` checkpoint (reconstruction phase).
        vqvae_network: set by the constructor from that checkpoint and saved with the hyperparameters; when
            reloading a mapper checkpoint whose ``vqvae_checkpoint`` is gone or now holds another network (a
            relative path read from another folder), the VQ-VAE is rebuilt from it and its weights come from the
            mapper checkpoint's ``model.vqvae.*``; fitting or evaluating without either is a
            :class:`ConfigurationError`. Not meant to be set by hand.
        audio_encoder, audio_encoder_args, identity_dim, normalize_identity, network: the arguments of
            :class:`HeadPoseGenerator` (features, α normalisation, the mapper's sizes and ``use_initial_pose``).
        pose_weight, latent_weight: weights of the two terms of Eq. 13.
        code_weight: weight of the code cross-entropy (module docstring; 0 = Eq. 13 only).
        teacher_forcing_ratio: probability that a training step's input code is the ground truth's ``Z_q``
            rather than a code sampled from the mapper's own prediction (:meth:`scheduled_inputs`); 1 = Eq. 13's
            teacher forcing.
        num_eval_seeds, sample_temperature, sample_top_k: sampling for the HPD / diversity / jerk metrics.
        speech_augmentation: the arguments of :class:`~talkinghead.audio.augmentation.SpeechAugmentation`
            (random level, noise, band limits and reverberation of the training speech), ``{}`` for its
            defaults; ``None`` (the default, the paper's setting) trains on the speech as recorded.
        lr, weight_decay, warmup_steps: AdamW, with the learning rate ramped up linearly over the first
            ``warmup_steps`` optimizer steps of the run (0 = none).

    Media: the mean face posed by the sampled (seed 0) | ground-truth head poses, a strip and a video with audio.
    """

    MONITOR = ("val/angle_error_deg", "min")
    EVALUATION_ARGS = ("num_eval_seeds", "sample_temperature", "sample_top_k")

    def __init__(
        self,
        vqvae_checkpoint: str | None = None,
        audio_encoder: str = "mel",
        audio_encoder_args: dict[str, Any] | None = None,
        identity_dim: int = 40,
        normalize_identity: bool = True,
        network: dict[str, Any] | None = None,
        pose_weight: float = 1.0,
        latent_weight: float = 1.0,
        code_weight: float = 1.0,
        teacher_forcing_ratio: float = 1.0,
        num_eval_seeds: int = 3,
        sample_temperature: float = 1.0,
        sample_top_k: int | None = None,
        speech_augmentation: dict[str, Any] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        vqvae_network: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        vqvae_state = None
        if vqvae_network is None or (vqvae_checkpoint is not None and Path(vqvae_checkpoint).is_file()):
            if vqvae_checkpoint is None:
                raise ConfigurationError(
                    "PoseMapperModule needs --model.init_args.vqvae_checkpoint, the PoseVQVAEModule checkpoint of the "
                    "reconstruction phase (train lightning_configs/pose_vqvae*.yaml first)"
                )
            checkpoint = read_checkpoint(vqvae_checkpoint)
            stored = dict(checkpoint.get("hyper_parameters", {}).get("network") or {})
            if vqvae_network is None or stored == vqvae_network:
                vqvae_network, vqvae_state = stored, substate(checkpoint, "net.")
                self.hparams["vqvae_network"] = vqvae_network
            else:  # a relative path read from another folder, or a replaced file: keep this mapper's own VQ-VAE
                log.warning(
                    "vqvae_checkpoint %s holds another PoseVQVAE than the one this mapper was trained with; "
                    "the mapper checkpoint's own VQ-VAE is used",
                    vqvae_checkpoint,
                )
        # Without weights from vqvae_checkpoint, only a restored mapper checkpoint supplies them (on_load_checkpoint).
        self._vqvae_without_weights = None if vqvae_state is not None else str(vqvae_checkpoint)
        self.model = HeadPoseGenerator(
            vqvae_network, audio_encoder, audio_encoder_args, identity_dim, normalize_identity, network
        )
        # checkpoints rebuild the audio encoder from its stored configuration, never from the hub
        self.hparams["audio_encoder_args"] = self.model.audio_encoder.portable_args(audio_encoder_args or {})
        if vqvae_state is not None:
            load_strict(self.model.vqvae, vqvae_state, f"PoseVQVAE checkpoint {vqvae_checkpoint}")
        names = METRICS + (DIVERSITY_METRICS if num_eval_seeds > 1 else ())
        self.metrics = self.split_metrics(lambda: {name: MeanMetric() for name in names})
        self.use_speech_augmentation(speech_augmentation)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._vqvae_without_weights = None

    def _require_vqvae_weights(self) -> None:
        """Refuse to train or evaluate on a frozen VQ-VAE that neither file nor checkpoint loaded."""
        if self._vqvae_without_weights is not None:
            raise ConfigurationError(
                f"the PoseVQVAE weights were never loaded: vqvae_checkpoint {self._vqvae_without_weights} is missing "
                "or holds another network than vqvae_network; name the VQ-VAE checkpoint this mapper was trained "
                "with, or restore a mapper checkpoint (--ckpt_path)"
            )

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self._require_vqvae_weights()

    def on_validation_start(self) -> None:
        self._require_vqvae_weights()

    def on_test_start(self) -> None:
        self._require_vqvae_weights()

    def forward(
        self,
        audio: torch.Tensor,
        alpha: torch.Tensor,
        initial_pose: torch.Tensor,
        num_frames: int,
        temperature: float = 0.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Audio (B, S) at 16 kHz, α (B, K), P⁰ (B, 6) → absolute head poses (B, num_frames, 6) (Eq. 7, 8)."""
        return self.model(audio, alpha, initial_pose, num_frames, temperature, top_k, generator)

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 13 on a teacher-forced pass; returns ``(loss, {"train/…": …})``."""
        vqvae, mapper = self.model.vqvae, self.model.net
        pose = batch["pose"]
        target = target_pose(pose, mapper.absolute_pose)
        with torch.no_grad():
            codes, indices = vqvae.quantizer.quantize(vqvae.encode(target))  # Z_q = q(E(P_r)), (B, N, d), (B, N, G)
        audio = self.training_speech(batch["audio"])
        features = self.model.audio_encoder(audio, pose.shape[1])
        inputs = self.scheduled_inputs(features, batch["alpha"], pose[:, 0], codes)
        z_hat = mapper(features, batch["alpha"], pose[:, 0], inputs)
        quantized, _ = vqvae.quantizer.quantize(z_hat)
        decoded = vqvae.decode(z_hat + (quantized - z_hat).detach(), pose.shape[1])
        pose_term = vqvae.normalized_error(decoded, target)
        latent_term = torch.nn.functional.mse_loss(z_hat, codes)
        logits = -vqvae.quantizer.distances(z_hat)
        code_term = torch.nn.functional.cross_entropy(logits.flatten(0, -2), indices.flatten())  # every group
        hp = self.hparams
        loss = hp.pose_weight * pose_term + hp.latent_weight * latent_term + hp.code_weight * code_term
        return loss, {"train/loss": loss, "train/pose": pose_term, "train/latent": latent_term, "train/code": code_term}

    def scheduled_inputs(
        self, features: torch.Tensor, alpha: torch.Tensor, initial_pose: torch.Tensor, codes: torch.Tensor
    ) -> torch.Tensor:
        """The input codes of a training step (B, N, d_code): ``codes`` (Z_q), or in training with
        ``teacher_forcing_ratio`` < 1 scheduled sampling in its one-pass parallel form, as the facial-motion
        stage's: a no-grad teacher-forced pass predicts Ẑ, and each step's input is Z_q with that probability, else
        a code drawn from Ẑ as inference draws it (``sample_temperature``, ``sample_top_k``), so the mapper learns
        to continue from codes it chose itself."""
        hp = self.hparams
        if not self.training or hp.teacher_forcing_ratio >= 1.0:
            return codes
        mapper, quantizer = self.model.net, self.model.vqvae.quantizer
        with torch.no_grad():
            guesses = mapper(features, alpha, initial_pose, codes)
            index = mapper.sample(guesses.flatten(0, 1), quantizer, hp.sample_temperature, hp.sample_top_k)
            drawn = quantizer.codes(index).view_as(codes)
        keep = torch.rand(codes.shape[:2] + (1,), device=codes.device) < hp.teacher_forcing_ratio
        return torch.where(keep, codes, drawn)

    def _sample(self, batch: dict, seed: int) -> torch.Tensor:
        """Poses (B, T, 6) sampled with the evaluation temperature / top-k and a fixed seed."""
        pose = batch["pose"]
        generator = torch.Generator(device=pose.device).manual_seed(seed)
        hp = self.hparams
        return self(
            batch["audio"], batch["alpha"], pose[:, 0], pose.shape[1], hp.sample_temperature, hp.sample_top_k, generator
        )

    def _evaluate(self, batch: dict, split: str) -> None:
        pose, audio, alpha = batch["pose"], batch["audio"], batch["alpha"]
        metrics = self.metrics[split]
        greedy = self(audio, alpha, pose[:, 0], pose.shape[1])
        angle, translation = pose_errors(greedy, pose)
        metrics["angle_error_deg"].update(angle)
        metrics["translation_error_cm"].update(translation)
        samples = torch.stack([self._sample(batch, seed) for seed in range(self.hparams.num_eval_seeds)])
        metrics["hpd_generated"].update(head_pose_diversity(samples).flatten())  # samples: (S, B, T, 6)
        metrics["hpd_ground_truth"].update(head_pose_diversity(pose))
        if len(samples) > 1:
            diversity = seed_diversity(samples)
            metrics["diversity_deg"].update(diversity[0])
            metrics["diversity_cm"].update(diversity[1])
        jerk = mean_jerk(samples)
        metrics["jerk_deg"].update(jerk[0].flatten())
        metrics["jerk_cm"].update(jerk[1].flatten())
        self.log(f"{split}/loss", self.loss(batch)[0], sync_dist=True, batch_size=pose.shape[0])

    def log_media(self, batch: dict, datamodule: object) -> list:
        first = {key: batch[key][:1] for key in ("pose", "audio", "alpha")}
        sampled, pose = self._sample(first, 0)[0], first["pose"][0]
        model = builtin_morphable_model().to(pose.device)
        face = model.vertices(
            torch.zeros(1, model.num_identity, device=pose.device),
            torch.zeros(1, model.num_expression, device=pose.device),
        )
        posed = apply_pose(face.expand(2 * len(pose), -1, -1), torch.cat((sampled, pose)))
        renders = ncc_renders(posed, model).unflatten(0, (2, len(pose)))
        return side_by_side("head_pose_sampled_vs_truth", renders[0], renders[1], first_audio(batch))
