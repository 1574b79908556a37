"""``HeadPoseGenerator``: the Learnable Head Pose Codebook at inference (§3.2, Eq. 7, 8).

The mapper Φ_map predicts the codes of the relative pose from the audio features, the style (identity α) and
the initial pose P⁰, autoregressively; each prediction is quantized by the frozen codebook (sampled over code
distances with a temperature, seeded) and the frozen decoder of the reconstruction phase turns the codes into
the relative pose P_r, added to P⁰ (Eq. 8). The VQ-VAE is frozen as a whole: eval mode, ``requires_grad=False``
and a ``train()`` that keeps it in eval mode (no dropout, no EMA or dead-code updates).
"""

from types import MethodType

import torch
from torch import nn

from talkinghead.audio import build_audio_encoder
from talkinghead.face import builtin_identity_std
from talkinghead.models.pose_mapper import PoseMapper
from talkinghead.models.pose_vqvae import PoseVQVAE


def _stay_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    return self


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode, ``requires_grad=False``, and a ``train()`` that keeps it in eval mode (frozen earlier stage)."""
    module.eval()
    module.requires_grad_(False)
    module.train = MethodType(_stay_eval, module)
    return module


class HeadPoseGenerator(nn.Module):
    """Frozen pose VQ-VAE + audio encoder + pose mapper (module docstring).

    Args:
        vqvae_network: keyword arguments of the frozen :class:`PoseVQVAE` (its weights are loaded afterwards).
        audio_encoder, audio_encoder_args: ``"mel"`` or ``"wav2vec2"`` and its keyword arguments.
        identity_dim: K of α; ``normalize_identity`` divides α by the built-in model's prior std.
        network: keyword arguments of :class:`PoseMapper` (sizes, ``use_initial_pose``).
    """

    def __init__(
        self,
        vqvae_network: dict | None = None,
        audio_encoder: str = "mel",
        audio_encoder_args: dict | None = None,
        identity_dim: int = 40,
        normalize_identity: bool = True,
        network: dict | None = None,
    ) -> None:
        super().__init__()
        self.vqvae = freeze(PoseVQVAE(**(vqvae_network or {})))
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
        codes, _ = self.net.generate(
            features,
            alpha,
            initial_pose,
            self.vqvae.quantizer,
            temperature=temperature,
            top_k=top_k,
            generator=generator,
        )
        decoded = self.vqvae.decode(codes, num_frames)
        return decoded if self.net.absolute_pose else initial_pose[:, None] + decoded
