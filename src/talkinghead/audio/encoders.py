"""Audio encoders: 16 kHz speech → one feature vector per video frame, ``A = (a_1, …, a_T)``.

VividTalk §3.2: "we utilize a pre-trained audio extractor [1] (wav2vec 2.0) to extract the contextualized
speech representation A = (a_1, …, a_f)". Every encoder here has that one output contract:

``encoder(waveform (B, S) float32 at 16 kHz, num_frames=T) → A (B, T, encoder.output_dim)``

and row ``t`` of ``A`` describes the audio span ``[t·sr/fps, (t+1)·sr/fps)`` = ``[t·640, (t+1)·640)`` at
25 fps (the data module's convention, see :func:`talkinghead.audio.io.num_video_frames`). The waveform is
first cut or zero-padded to exactly ``T·sr/fps`` samples, so odd lengths always give ``T`` rows and the
same audio reaches every encoder. Items of a batch share ``S``; there is no padding mask, so an item
zero-padded to the batch length is encoded with its padding (see :class:`Wav2Vec2Encoder`).

* :class:`MelEncoder` (``"mel"``): weight-free log-mel, ``k`` mel frames per video frame stacked.
* :class:`Wav2Vec2Encoder` (``"wav2vec2"``): the paper's wav2vec 2.0 [1] (transformers), 50 Hz hidden
  states linearly interpolated to the video frames.
"""

import os
from collections import OrderedDict
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from transformers.audio_utils import mel_filter_bank

if TYPE_CHECKING:
    from transformers import Wav2Vec2Config

from talkinghead.audio.io import FPS, SAMPLE_RATE


class AudioEncoder(nn.Module):
    """Contract: ``forward(waveform (B, S), num_frames) → (B, num_frames, output_dim)`` (module docstring).

    ``stream_context`` = (left, right): the whole video frames of audio before and after a frame's own span that
    streaming passes to :meth:`forward` along with it (:mod:`talkinghead.pipeline.streaming` encodes a sliding
    window and keeps the rows of the frames in its middle). ``right`` is the encoder's lookahead.
    """

    output_dim: int
    stream_context: tuple[int, int]

    def __init__(self, fps: float = FPS, sample_rate: int = SAMPLE_RATE) -> None:
        super().__init__()
        self.fps = fps
        self.sample_rate = sample_rate

    def portable_args(self, args: dict) -> dict:
        """Constructor arguments that rebuild this encoder from a checkpoint alone: ``args`` (what it was built
        with) unless the encoder was loaded from somewhere a checkpoint does not carry."""
        return dict(args)

    def frame_samples(self, num_frames: int) -> int:
        """Samples covered by ``num_frames`` video frames (the encoders' input length)."""
        return round(num_frames * self.sample_rate / self.fps)

    def crop_to_frames(self, waveform: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Check the input and cut or zero-pad it to exactly ``num_frames`` video frames, float32 (B, S')."""
        if waveform.ndim != 2:
            raise ValueError(f"waveform must be (B, S), got shape {tuple(waveform.shape)}")
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        length = self.frame_samples(num_frames)
        waveform = waveform.float()[:, :length]
        return F.pad(waveform, (0, length - waveform.shape[1]))


class PowerSpectrogram(nn.Module):
    """(B, S) → (B, n_fft // 2 + 1, F) power spectrum ``|STFT|²``: periodic Hann window of ``n_fft`` samples,
    hop ``hop``, no centring (frame ``j`` is samples ``[j·hop, j·hop + n_fft)``, ``F = 1 + ⌊(S − n_fft) / hop⌋``)."""

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        spectrum = torch.stft(waveform, self.n_fft, self.hop, window=self.window, center=False, return_complex=True)
        return spectrum.abs().square()


class MelScale(nn.Module):
    """(B, n_fft // 2 + 1, F) power spectrum → (B, n_mels, F): ``n_mels`` triangular filters from 0 Hz to
    ``sample_rate / 2``, equally spaced on the Slaney mel scale, each divided by its width in Hz (Slaney area
    normalisation); the filter bank is :func:`transformers.audio_utils.mel_filter_bank`, Whisper's."""

    def __init__(self, n_mels: int, n_fft: int, sample_rate: int) -> None:
        super().__init__()
        bank = mel_filter_bank(
            n_fft // 2 + 1, n_mels, 0.0, sample_rate / 2, sample_rate, norm="slaney", mel_scale="slaney"
        )
        self.register_buffer("fb", torch.from_numpy(bank).float())  # (n_fft // 2 + 1, n_mels)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return (power.transpose(-1, -2) @ self.fb).transpose(-1, -2)


class MelEncoder(AudioEncoder):
    """Weight-free log-mel features: ``C = frames_per_video_frame · n_mels`` (320 by default).

    The front end is Whisper's (Radford et al. 2022): power mel spectrogram with Slaney mel scale and
    area normalisation, a 25 ms Hann window (``n_fft = 400``), ``log10(max(mel, 1e-10))`` and the fixed
    affine map ``(x + 4) / 4`` (speech lands roughly in [-1, 1.5], digital silence at -1.5). Fixed constants
    instead of per-utterance statistics keep the features of a chunk independent of the rest of the
    utterance (streaming). The hop is ``sample_rate / (fps · k)`` (10 ms for k = 4 at 25 fps).

    Alignment: the waveform is zero-padded by ``(n_fft − hop) / 2`` on both sides and analysed without
    centring, so mel frame ``j`` is centred on sample ``(j + ½)·hop``; the ``k`` frames of video frame ``t``
    are therefore the ones centred inside ``[t·640, (t+1)·640)``. Output row ``t`` is their concatenation
    in time order, ``[mel_{tk}, …, mel_{tk+k−1}]``, each of ``n_mels`` bins.

    The buffers are ``mel.spectrogram.window`` and ``mel.mel_scale.fb``, the names of
    ``torchaudio.transforms.MelSpectrogram``'s, so checkpoints saved with that front end load strictly.

    Streaming (``stream_context = (1, 1)``): a frame's features depend on ``(n_fft − hop) / 2`` samples
    (7.5 ms) on either side of its span, which are zeros at the ends of the utterance; with one whole frame of
    context on each side a window's middle rows are exactly those of the whole utterance, and the right frame
    (40 ms) is also what tells that the frame is not the last one (whose right context is zeros).
    """

    stream_context = (1, 1)

    def __init__(
        self,
        n_mels: int = 80,
        fps: float = FPS,
        sample_rate: int = SAMPLE_RATE,
        frames_per_video_frame: int = 4,
        n_fft: int = 400,
    ) -> None:
        super().__init__(fps, sample_rate)
        hop = sample_rate / (fps * frames_per_video_frame)
        if hop != int(hop) or not 0 < hop <= n_fft:
            raise ValueError(f"sample_rate / (fps · frames_per_video_frame) = {hop} must be an integer in [1, n_fft]")
        self.hop = int(hop)
        self.n_mels = n_mels
        self.frames_per_video_frame = frames_per_video_frame
        self.output_dim = n_mels * frames_per_video_frame
        self.pad = ((n_fft - self.hop) // 2, n_fft - self.hop - (n_fft - self.hop) // 2)
        self.mel = nn.Sequential(
            OrderedDict(spectrogram=PowerSpectrogram(n_fft, self.hop), mel_scale=MelScale(n_mels, n_fft, sample_rate))
        )

    def forward(self, waveform: torch.Tensor, num_frames: int) -> torch.Tensor:
        """(B, S) → (B, num_frames, k · n_mels)."""
        waveform = F.pad(self.crop_to_frames(waveform, num_frames), self.pad)
        with torch.autocast(waveform.device.type, enabled=False):
            mel = self.mel(waveform)
        features = (torch.log10(mel.clamp(min=1e-10)) + 4) / 4
        batch = features.shape[0]
        return features.transpose(1, 2).reshape(batch, num_frames, self.output_dim)


class Wav2Vec2Encoder(AudioEncoder):
    """wav2vec 2.0 [1] hidden states at the video frame rate: ``C = config.hidden_size``.

    ``name_or_path`` is a hub name (e.g. ``facebook/wav2vec2-base-960h``, the paper's extractor) or a local
    directory, loaded with ``Wav2Vec2Model.from_pretrained`` (a ``…ForCTC`` checkpoint loads its encoder);
    ``config`` (a ``Wav2Vec2Config`` or its dict) builds a randomly initialised model instead (:meth:`from_config`;
    checkpoints store it, :meth:`portable_args`). Exactly one is given.

    * The CNN feature encoder is frozen when ``freeze_feature_encoder`` (``requires_grad = False``); the
      feature projection and the transformer stay trainable.
    * Input normalisation as ``Wav2Vec2FeatureExtractor(do_normalize=True)``: per utterance (per batch
      item) zero mean and unit variance, ``(x − μ) / sqrt(σ² + 1e-7)``, over the ``T·640`` samples used.
    * ``layer``: the output of that transformer layer (``-1``: ``last_hidden_state``, otherwise
      ``hidden_states[layer]`` with 0 the projected CNN features).
    * ``spec_augment``: transformers' SpecAugment time/feature masking in training mode (off by default:
      it is a CTC fine-tuning regulariser and raises for clips shorter than ``mask_time_length`` frames).
      Without time masking the learned mask vector ``masked_spec_embed`` (present whenever the configuration has
      ``mask_time_prob`` or ``mask_feature_prob`` > 0, as the library's defaults and wav2vec2-base-960h do) is never
      used, so it is frozen: a trainable parameter that never gets a gradient stops DDP (without
      ``find_unused_parameters``) at its second step.
    * ``layerdrop``: probability of skipping each transformer layer in training mode (transformers' LayerDrop),
      replacing the configuration's (0.1 by default and in wav2vec2-base-960h). Off by default: a skipped layer's
      parameters get no gradient in that step, which DDP without ``find_unused_parameters`` cannot reduce. Set it
      > 0 only on one device or with ``--trainer.strategy ddp_find_unused_parameters_true``.

    Alignment: the feature encoder has stride ``s`` (320 samples, 50 Hz) and receptive field ``r``
    (400 samples). The normalised waveform is zero-padded by ``(r − s) / 2`` on both sides, which centres
    feature ``j`` on sample ``(j + ½)·s`` and gives ``T·640 / s`` features (``2T`` at 50 Hz); they are
    resampled to ``T`` rows by ``F.interpolate(mode="linear", align_corners=False)``, which maps the centre
    of video frame ``t``, ``(t + ½)·640``, to feature time ``(t + ½)·640 / s`` — at 50 Hz the mean of
    features ``2t`` and ``2t + 1``, the two halves of the frame's span.

    Streaming (``stream_context``, default 50 frames = 2 s before and 3 frames = 120 ms after): the transformer
    attends over the whole input and the normalisation uses the whole input's statistics, so no finite window
    reproduces the offline features exactly; streaming encodes a sliding window (normalised over itself) and
    keeps the rows of its new frames. The difference from the offline features is measured in
    ``tests/test_streaming.py`` and docs/PERFORMANCE.md.
    """

    stream_context = (50, 3)

    def __init__(
        self,
        name_or_path: str | os.PathLike | None = None,
        freeze_feature_encoder: bool = True,
        layer: int = -1,
        fps: float = FPS,
        normalize: bool = True,
        spec_augment: bool = False,
        layerdrop: float = 0.0,
        config: "Wav2Vec2Config | dict | None" = None,
    ) -> None:
        # Imported here: transformers' model code adds ~4 s to the start of every process that never uses it.
        from transformers import Wav2Vec2Config, Wav2Vec2Model

        super().__init__(fps, SAMPLE_RATE)
        if (name_or_path is None) == (config is None):
            raise ValueError("give exactly one of name_or_path and config")
        if isinstance(config, dict):
            config = Wav2Vec2Config.from_dict(config)
        self.model = Wav2Vec2Model(config) if config is not None else Wav2Vec2Model.from_pretrained(name_or_path)
        self.model.train()  # from_pretrained returns eval mode; the encoder follows its parent's train()/eval()
        self.model.config.apply_spec_augment = spec_augment
        self.model.config.layerdrop = layerdrop
        masks_time = spec_augment and self.model.config.mask_time_prob > 0
        if getattr(self.model, "masked_spec_embed", None) is not None and not masks_time:
            self.model.masked_spec_embed.requires_grad_(False)  # unused without time masking (class docstring)
        if freeze_feature_encoder:
            self.model.freeze_feature_encoder()
        self.layer = layer
        self.normalize = normalize
        self.output_dim = self.model.config.hidden_size
        stride, field = 1, 1
        for kernel, step in zip(self.model.config.conv_kernel, self.model.config.conv_stride, strict=True):
            field += (kernel - 1) * stride
            stride *= step
        self.stride, self.receptive_field = stride, field
        margin = max(field - stride, 0)
        self.pad = (margin // 2, margin - margin // 2)

    def portable_args(self, args: dict) -> dict:
        """``args`` with ``name_or_path`` replaced by the model's configuration (a dict): a checkpoint carries the
        weights, so rebuilding from it needs neither the hub nor its cache."""
        portable = {key: value for key, value in args.items() if key != "name_or_path"}
        portable["config"] = self.model.config.to_dict()
        return portable

    @classmethod
    def from_config(cls, config: "Wav2Vec2Config", **kwargs) -> "Wav2Vec2Encoder":
        """A randomly initialised model of ``config`` (tests, benchmarks; no download)."""
        return cls(config=config, **kwargs)

    def forward(self, waveform: torch.Tensor, num_frames: int) -> torch.Tensor:
        """(B, S) → (B, num_frames, hidden_size)."""
        waveform = self.crop_to_frames(waveform, num_frames)
        if self.normalize:
            mean = waveform.mean(dim=1, keepdim=True)
            variance = waveform.var(dim=1, unbiased=False, keepdim=True)
            waveform = (waveform - mean) / torch.sqrt(variance + 1e-7)
        waveform = F.pad(waveform, self.pad).to(self.model.dtype)
        hidden_layers = self.layer != -1
        out = self.model(waveform, output_hidden_states=hidden_layers)
        hidden = out.hidden_states[self.layer] if hidden_layers else out.last_hidden_state
        frames = F.interpolate(hidden.transpose(1, 2), size=num_frames, mode="linear", align_corners=False)
        return frames.transpose(1, 2)


ENCODERS = {"mel": MelEncoder, "wav2vec2": Wav2Vec2Encoder}


def build_audio_encoder(kind: str = "mel", **kwargs) -> AudioEncoder:
    """``"mel"`` → :class:`MelEncoder`, ``"wav2vec2"`` → :class:`Wav2Vec2Encoder`, with ``kwargs``."""
    if kind not in ENCODERS:
        raise ValueError(f"unknown audio encoder {kind!r}; choose one of {', '.join(sorted(ENCODERS))}")
    return ENCODERS[kind](**kwargs)
