"""The training objective of the mesh-to-video stage (§3.4): generator and discriminator losses in one module.

:class:`MeshToVideoLoss` owns what only training needs — the multi-scale discriminator and the perceptual
network — so the inference network (:class:`~talkinghead.models.mesh_to_video.MeshToVideo`) carries neither.
Generator loss::

    λ_l1‖x̂ − x‖₁ + λ_perc L_perc(x̂, x) + λ_kl KL(q(z|PT_ref, PT_d) ‖ N(0, I)) + λ_gan L_gan + λ_fm L_fm

with L_perc the VGG-19 pyramid of the paper or its weight-free stand-in (:mod:`talkinghead.models.perceptual`),
plus, where ``mesh_flow_weight > 0``, a term the paper does not have: the L1 distance (in motion-resolution
pixels, averaged over the driven inner face M_d) between the predicted flow and the flow the two meshes define
there — each driven surface point sampled at the same point of the reference mesh. The photometric losses alone
give the flow a signal only at the portrait's texture edges and take far longer to align it than a few CPU
minutes; the network still has to infer the flow from PT_ref, PT_d and the lip maps (the correspondence is not
an input) and to extend it to the hair, ears and torso, where only the photometric losses speak.
The feature-matching term compares the discriminator's features of real and generated frames (pix2pixHD).

``mouth_weight > 0`` adds a second term the paper does not have: the L1 distance averaged over the driven mouth
region only (:func:`mouth_region`). The mouth is about 1 % of a frame, so in the frame-wide terms a stretched
closed lip costs little against the cavity and teeth a real opening shows; this term makes the mouth interior
weigh as much as the rest of the frame.
"""

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from torch import nn

from talkinghead.models.discriminator import MultiScaleDiscriminator
from talkinghead.models.motion_vae import kl_divergence
from talkinghead.models.perceptual import build_perceptual_loss

GAN_LOSSES = ("lsgan", "hinge")
MOUTH_DILATION = 4  # motion-resolution pixels around the lip vertices: the widest opening's middle is covered


def mouth_region(lip_heatmaps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The driven mouth region (B, 1, H, W) in [0, 1] from the driven lip maps (B, L, s, s): their maximum
    over the lip vertices, dilated by ``MOUTH_DILATION`` pixels (a max filter, so the inside of an open mouth,
    between the lip vertices, is covered) and resized to the frame."""
    region = lip_heatmaps.amax(1, keepdim=True)
    region = F.max_pool2d(region, 2 * MOUTH_DILATION + 1, stride=1, padding=MOUTH_DILATION)
    return F.interpolate(region, size=size, mode="bilinear", align_corners=False)


def generator_adversarial_loss(fake: list[tuple[list[torch.Tensor], torch.Tensor]], kind: str) -> torch.Tensor:
    """The generator's GAN term, averaged over scales: LSGAN ``(D(G) − 1)²`` or hinge ``−D(G)``."""
    if kind not in GAN_LOSSES:
        raise ValueError(f"gan loss must be one of {GAN_LOSSES}, got {kind!r}")
    terms = [((logits - 1.0).square() if kind == "lsgan" else -logits).mean() for _, logits in fake]
    return torch.stack(terms).mean()


def discriminator_loss(
    real: list[tuple[list[torch.Tensor], torch.Tensor]], fake: list[tuple[list[torch.Tensor], torch.Tensor]], kind: str
) -> torch.Tensor:
    """The discriminator's loss averaged over scales: LSGAN ``(D(x) − 1)² + D(G)²`` or hinge
    ``relu(1 − D(x)) + relu(1 + D(G))``."""
    if kind not in GAN_LOSSES:
        raise ValueError(f"gan loss must be one of {GAN_LOSSES}, got {kind!r}")
    terms = []
    for (_, real_logits), (_, fake_logits) in zip(real, fake, strict=True):
        if kind == "lsgan":
            terms.append((real_logits - 1.0).square().mean() + fake_logits.square().mean())
        else:
            terms.append(F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())
    return torch.stack(terms).mean()


def feature_matching_loss(
    real: list[tuple[list[torch.Tensor], torch.Tensor]], fake: list[tuple[list[torch.Tensor], torch.Tensor]]
) -> torch.Tensor:
    """L_fm (§3.4): mean L1 between the discriminator features of real (detached) and generated frames."""
    terms = [
        (fake_feature - real_feature.detach()).abs().mean()
        for (real_features, _), (fake_features, _) in zip(real, fake, strict=True)
        for real_feature, fake_feature in zip(real_features, fake_features, strict=True)
    ]
    return torch.stack(terms).mean()


class MeshToVideoLoss(nn.Module):
    """Generator and discriminator losses (module docstring); owns the discriminator and the perceptual network.

    Args:
        discriminator: keyword arguments of :class:`MultiScaleDiscriminator`.
        perceptual, perceptual_args: ``"vgg19"`` (the paper's; ``perceptual_args.weights`` = local weights file)
            or ``"gradients"`` (weight-free) and its keyword arguments; built by :meth:`build_perceptual`.
        l1_weight, perceptual_weight, kl_weight, gan_weight, feature_matching_weight, mesh_flow_weight,
            mouth_weight: weights.
        gan_loss: ``"lsgan"`` or ``"hinge"``.
    """

    def __init__(
        self,
        discriminator: dict | None = None,
        perceptual: str = "vgg19",
        perceptual_args: dict | None = None,
        l1_weight: float = 1.0,
        perceptual_weight: float = 1.0,
        kl_weight: float = 1e-4,
        mesh_flow_weight: float = 0.0,
        gan_weight: float = 0.1,
        feature_matching_weight: float = 1.0,
        gan_loss: str = "lsgan",
        mouth_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if gan_loss not in GAN_LOSSES:
            raise ValueError(f"gan loss must be one of {GAN_LOSSES}, got {gan_loss!r}")
        self.discriminator = MultiScaleDiscriminator(**(discriminator or {}))
        self.perceptual: nn.Module | None = None
        self.perceptual_kind, self.perceptual_args = perceptual, dict(perceptual_args or {})
        self.weights = {
            "l1": l1_weight,
            "perceptual": perceptual_weight,
            "kl": kl_weight,
            "mesh_flow": mesh_flow_weight,
            "gan": gan_weight,
            "feature_matching": feature_matching_weight,
            "mouth": mouth_weight,
        }
        self.gan_loss = gan_loss

    def build_perceptual(self) -> None:
        """Build the fixed perceptual network (a missing VGG-19 file fails here, in one line)."""
        if self.perceptual is None:
            self.perceptual = build_perceptual_loss(self.perceptual_kind, **self.perceptual_args)

    def generator_loss(
        self,
        out: dict[str, torch.Tensor],
        batch: dict[str, torch.Tensor],
        use_gan: bool,
        real: list[tuple[list[torch.Tensor], torch.Tensor]] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The generator's loss on :class:`MeshToVideo`'s outputs ``out`` (sampled latent) for a rendered
        batch (``driven_frame``, ``mask_driven``, ``flow_mesh``, ``lip_driven``) → ``(loss, {"train/…": …})``.

        ``real``: the discriminator's outputs on ``driven_frame`` when the caller has them (a training step
        reuses them in :meth:`discriminator_step_loss`); only their values enter this loss (the
        feature-matching targets are detached). Computed here, without a graph, when None."""
        if self.perceptual is None:
            raise RuntimeError("call build_perceptual() before computing the training loss")
        w = self.weights
        frame, target = out["frame"], batch["driven_frame"]
        l1 = (frame - target).abs().mean()
        perceptual = self.perceptual(frame, target)
        kl = kl_divergence(out["mu"], out["logvar"])
        mask = batch["mask_driven"]
        pixels = (out["flow"] - batch["flow_mesh"]).abs().sum(1, keepdim=True) * (out["flow"].shape[-1] / 2)
        mesh_flow = (pixels * mask).sum() / mask.sum().clamp_min(1.0)
        loss = w["l1"] * l1 + w["perceptual"] * perceptual + w["kl"] * kl
        loss = loss + w["mesh_flow"] * mesh_flow
        logs = {"train/l1": l1, "train/perceptual": perceptual, "train/kl": kl, "train/mesh_flow_px": mesh_flow}
        if w["mouth"] > 0:
            region = mouth_region(batch["lip_driven"], frame.shape[-2:])
            mouth = ((frame - target).abs() * region).sum() / (region.sum() * frame.shape[1]).clamp_min(1.0)
            loss = loss + w["mouth"] * mouth
            logs["train/mouth_l1"] = mouth
        if use_gan:
            fake = self.discriminator(frame)
            if real is None:
                with torch.no_grad():
                    real = self.discriminator(target)
            gan, matching = generator_adversarial_loss(fake, self.gan_loss), feature_matching_loss(real, fake)
            loss = loss + w["gan"] * gan + w["feature_matching"] * matching
            logs.update({"train/gan": gan, "train/feature_matching": matching})
        logs["train/loss"] = loss
        return loss, logs

    def discriminator_step_loss(
        self,
        real_frames: torch.Tensor,
        fake_frames: torch.Tensor,
        real: list[tuple[list[torch.Tensor], torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """The discriminator's loss on real frames and (detached) generated frames; ``real``: the
        discriminator's outputs on ``real_frames``, with their graph, when the caller has them (computed when
        None)."""
        real = self.discriminator(real_frames) if real is None else real
        return discriminator_loss(real, self.discriminator(fake_frames.detach()), self.gan_loss)
