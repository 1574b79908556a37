"""``PoseMapperModule``: the mapping phase of the Learnable Head Pose Codebook (§3.2, Eq. 7, 13).

The PoseVQVAE of the reconstruction phase is loaded from a :class:`~talkinghead.lightning.pose_vqvae.
PoseVQVAEModule` checkpoint (``vqvae_checkpoint``; its ``hyper_parameters["network"]`` rebuild the network,
its ``net.*`` weights are loaded with every missing/unexpected key reported as an error) and frozen as a
whole — encoder, codebook and decoder: eval mode, ``requires_grad=False``, and a ``train()`` that keeps it in
eval mode (no dropout, no EMA / dead-code updates). Its weights are also stored in this module's checkpoints
(``vqvae.*``) and its network arguments in the hyperparameters (``vqvae_network``, set by the constructor), so
a mapper checkpoint is self-contained: it reloads the same frozen stage even where ``vqvae_checkpoint`` no
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

from pathlib import Path
from types import MethodType

import torch
from torchmetrics import MeanMetric

from talkinghead.audio import build_audio_encoder
from talkinghead.face import builtin_identity_std
from talkinghead.lightning.pose_vqvae import target_pose
from talkinghead.lightning.stage import StageModule
from talkinghead.metrics.pose import head_pose_diversity, mean_jerk, pose_errors, seed_diversity
from talkinghead.models.pose_mapper import PoseMapper
from talkinghead.models.pose_vqvae import PoseVQVAE

METRICS = ("angle_error_deg", "translation_error_cm", "hpd_generated", "hpd_ground_truth",
           "diversity_deg", "diversity_cm", "jerk_deg", "jerk_cm")


def _stay_eval(self: torch.nn.Module, mode: bool = True) -> torch.nn.Module:
    return self


def freeze(module: torch.nn.Module) -> torch.nn.Module:
    """Eval mode, ``requires_grad=False``, and a ``train()`` that keeps it in eval mode (frozen earlier stage)."""
    module.eval()
    module.requires_grad_(False)
    module.train = MethodType(_stay_eval, module)
    return module


def load_pose_vqvae(path: str | Path) -> tuple[PoseVQVAE, dict]:
    """A :class:`PoseVQVAE` and its network arguments from a ``PoseVQVAEModule`` checkpoint (``weights_only=True``).

    Raises ``FileNotFoundError`` naming the path if it does not exist, ``RuntimeError`` listing the missing
    and unexpected ``net.*`` keys if the weights do not match the network the hyperparameters describe.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PoseVQVAE checkpoint not found: {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    network = dict(checkpoint.get("hyper_parameters", {}).get("network") or {})
    vqvae = PoseVQVAE(**network)
    state = {key.removeprefix("net."): value for key, value in checkpoint["state_dict"].items()
             if key.startswith("net.")}
    expected = set(vqvae.state_dict())
    missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected)
    if missing or unexpected:
        raise RuntimeError(
            f"PoseVQVAE checkpoint {path} does not match its network: missing keys {missing}, "
            f"unexpected keys {unexpected}"
        )
    vqvae.load_state_dict(state)
    return vqvae, network


class PoseMapperModule(StageModule):
    """Thin training wrapper around :class:`PoseMapper` with a frozen :class:`PoseVQVAE` (module docstring).

    Args:
        vqvae_checkpoint: path of the ``PoseVQVAEModule`` checkpoint (reconstruction phase).
        vqvae_network: set by the constructor from that checkpoint and saved with the hyperparameters; when
            reloading a mapper checkpoint whose ``vqvae_checkpoint`` is gone, the VQ-VAE is rebuilt from it and
            its weights come from the mapper checkpoint's ``vqvae.*``. Not meant to be set by hand.
        audio_encoder, audio_encoder_args: as in ``FacialMotionModule`` (``"mel"`` or ``"wav2vec2"``).
        identity_dim: K of α; ``normalize_identity`` divides α by the built-in model's prior std.
        network: keyword arguments of :class:`PoseMapper` (sizes, ``use_initial_pose``).
        pose_weight, latent_weight: weights of the two terms of Eq. 13.
        code_weight: weight of the code cross-entropy (module docstring; 0 = Eq. 13 only).
        num_eval_seeds, sample_temperature, sample_top_k: sampling for the HPD / diversity / jerk metrics.
        lr, weight_decay: AdamW.
    """

    def __init__(
        self,
        vqvae_checkpoint: str | None = None,
        audio_encoder: str = "mel",
        audio_encoder_args: dict | None = None,
        identity_dim: int = 40,
        normalize_identity: bool = True,
        network: dict | None = None,
        pose_weight: float = 1.0,
        latent_weight: float = 1.0,
        code_weight: float = 1.0,
        num_eval_seeds: int = 3,
        sample_temperature: float = 1.0,
        sample_top_k: int | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        vqvae_network: dict | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if vqvae_network is not None and (vqvae_checkpoint is None or not Path(vqvae_checkpoint).is_file()):
            vqvae = PoseVQVAE(**vqvae_network)
        else:
            if vqvae_checkpoint is None:
                raise ValueError("PoseMapperModule needs vqvae_checkpoint, the PoseVQVAEModule checkpoint")
            vqvae, self.hparams["vqvae_network"] = load_pose_vqvae(vqvae_checkpoint)
        self.vqvae = freeze(vqvae)
        self.audio_encoder = build_audio_encoder(audio_encoder, **(audio_encoder_args or {}))
        self.net = PoseMapper(
            audio_dim=self.audio_encoder.output_dim,
            code_dim=self.vqvae.quantizer.code_dim,
            downsample=self.vqvae.downsample,
            identity_dim=identity_dim,
            identity_std=builtin_identity_std(identity_dim) if normalize_identity else None,
            pose_scale=self.vqvae.pose_scale.tolist(),
            absolute_pose=self.vqvae.absolute_pose,
            **(network or {}),
        )
        self.metrics = torch.nn.ModuleDict(
            {split: torch.nn.ModuleDict({name: MeanMetric() for name in METRICS}) for split in ("val", "test")}
        )

    @torch.no_grad()
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
        features = self.audio_encoder(audio, num_frames)
        codes, _ = self.net.generate(features, alpha, initial_pose, self.vqvae.quantizer,
                                     temperature=temperature, top_k=top_k, generator=generator)
        decoded = self.vqvae.decode(codes, num_frames)
        return decoded if self.net.absolute_pose else initial_pose[:, None] + decoded

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 13 on a teacher-forced pass; returns ``(loss, {"train/…": …})``."""
        pose = batch["pose"]
        target = target_pose(pose, self.net.absolute_pose)
        with torch.no_grad():
            codes, indices = self.vqvae.quantizer.quantize(self.vqvae.encode(target))  # Z_q = q(E(P_r)), (B, N, d)
        features = self.audio_encoder(batch["audio"], pose.shape[1])
        z_hat = self.net(features, batch["alpha"], pose[:, 0], codes)
        quantized, _ = self.vqvae.quantizer.quantize(z_hat)
        decoded = self.vqvae.decode(z_hat + (quantized - z_hat).detach(), pose.shape[1])
        pose_term = self.vqvae.normalized_error(decoded, target)
        latent_term = torch.nn.functional.mse_loss(z_hat, codes)
        logits = -self.vqvae.quantizer.distances(z_hat)
        code_term = torch.nn.functional.cross_entropy(logits.flatten(0, 1), indices.flatten())
        loss = (self.hparams.pose_weight * pose_term + self.hparams.latent_weight * latent_term
                + self.hparams.code_weight * code_term)
        return loss, {"train/loss": loss, "train/pose": pose_term, "train/latent": latent_term,
                      "train/code": code_term}

    def _evaluate(self, batch: dict, split: str) -> None:
        pose, audio, alpha = batch["pose"], batch["audio"], batch["alpha"]
        length, initial = pose.shape[1], pose[:, 0]
        metrics = self.metrics[split]
        greedy = self(audio, alpha, initial, length)
        angle, translation = pose_errors(greedy, pose)
        metrics["angle_error_deg"].update(angle)
        metrics["translation_error_cm"].update(translation)
        samples = []
        for seed in range(self.hparams.num_eval_seeds):
            generator = torch.Generator(device=pose.device).manual_seed(seed)
            samples.append(self(audio, alpha, initial, length, self.hparams.sample_temperature,
                                self.hparams.sample_top_k, generator))
        samples = torch.stack(samples)  # (S, B, T, 6)
        metrics["hpd_generated"].update(head_pose_diversity(samples).flatten())
        metrics["hpd_ground_truth"].update(head_pose_diversity(pose))
        if len(samples) > 1:
            diversity = seed_diversity(samples)
            metrics["diversity_deg"].update(diversity[0])
            metrics["diversity_cm"].update(diversity[1])
        jerk = mean_jerk(samples)
        metrics["jerk_deg"].update(jerk[0].flatten())
        metrics["jerk_cm"].update(jerk[1].flatten())
        self.log(f"{split}/loss", self.loss(batch)[0], batch_size=pose.shape[0])

    def _log_epoch(self, split: str) -> None:
        values = {name: metric.compute() for name, metric in self.metrics[split].items() if metric.update_called}
        self.log_dict({f"{split}/{name}": value for name, value in values.items()}, prog_bar=split == "val")
        for metric in self.metrics[split].values():
            metric.reset()
