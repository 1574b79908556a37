"""``AudioToMotion``: the Global and Local Facial Motion Generator at inference (§3.2, Eq. 2–4).

Speech (16 kHz) → audio features A (:mod:`talkinghead.audio.encoders`: wav2vec 2.0 as in the paper, or the
weight-free log-mel) → the three autoregressive branches of :class:`~talkinghead.models.facial_motion.
FacialMotionGenerator` conditioned on the identity α → blendshapes β̂ (52, ARKit order) and lip offsets Ô_lip.
:meth:`AudioToMotion.meshes` turns them into the unposed meshes of Eq. 4 with the morphable model.
"""

import torch
from torch import nn

from talkinghead.audio import build_audio_encoder
from talkinghead.face import builtin_identity_std, load_morphable_model
from talkinghead.models.facial_motion import FacialMotionGenerator, merge_blendshapes


class AudioToMotion(nn.Module):
    """Audio encoder + facial-motion generator + morphable model (module docstring).

    Args:
        audio_encoder: ``"mel"`` (weight-free log-mel, the embedded configs) or ``"wav2vec2"`` (the paper's).
        audio_encoder_args: keyword arguments of the encoder (e.g. ``name_or_path`` for wav2vec2).
        face_model: ``"builtin"`` or the path of a FaceVerse ``.npy`` file.
        network: keyword arguments of :class:`FacialMotionGenerator` (sizes, ablation flags).
        expression_scale: the gain inference applies to β̂ (then clamped to [0, 1]) and Ô_lip unless told
            otherwise (:class:`~talkinghead.pipeline.GenerationParams`, ``--expression-scale``): a calibration of
            the trained network, e.g. a network trained on synthetic speech whose mouth moves less on real speech
            than real speakers' do. 1 (the default, the paper) = the prediction as trained; :meth:`forward`,
            training and validation never apply it.
    """

    def __init__(
        self,
        audio_encoder: str = "mel",
        audio_encoder_args: dict | None = None,
        face_model: str = "builtin",
        network: dict | None = None,
        expression_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if not expression_scale >= 0:
            raise ValueError(f"expression_scale must be ≥ 0, got {expression_scale}")
        self.expression_scale = float(expression_scale)
        self.face = load_morphable_model(face_model)
        self.audio_encoder = build_audio_encoder(audio_encoder, **(audio_encoder_args or {}))
        self.net = FacialMotionGenerator(
            audio_dim=self.audio_encoder.output_dim,
            identity_dim=self.face.num_identity,
            num_lip_vertices=self.face.num_lip_vertices,
            identity_std=builtin_identity_std(self.face.num_identity) if face_model == "builtin" else None,
            **(network or {}),
        )

    def forward(self, audio: torch.Tensor, alpha: torch.Tensor, num_frames: int) -> dict[str, torch.Tensor]:
        """Audio (B, S) at 16 kHz + identity α (B, K) → β̂ (B, T, 52) and Ô_lip (B, T, L, 3), autoregressively."""
        features = self.audio_encoder(audio, num_frames)
        out = self.net.generate(features, alpha)
        return {"beta": merge_blendshapes(out["beta_lip"], out["beta_other"]), "lip_offsets": out["lip_offsets"]}

    def scale_expression(
        self, beta: torch.Tensor, lip_offsets: torch.Tensor, scale: float | None = None
    ) -> dict[str, torch.Tensor]:
        """β̂ (…, 52) and Ô_lip (…, L, 3) times ``scale`` (None: :attr:`expression_scale`), β̂ clamped to [0, 1]."""
        scale = self.expression_scale if scale is None else scale
        return {"beta": (beta * scale).clamp(0.0, 1.0), "lip_offsets": lip_offsets * scale}

    def meshes(self, alpha: torch.Tensor, beta: torch.Tensor, lip_offsets: torch.Tensor) -> torch.Tensor:
        """Unposed meshes of Eq. 4, (B, T, N, 3), for α (B, K), β (B, T, 52), lip offsets (B, T, L, 3)."""
        return self.face.vertices(alpha[:, None], beta, lip_offsets)
