"""Random recording conditions for training speech: level, noise, band limits and room reverberation.

A model that only ever hears one synthesizer at one level learns that level: on a real recording 6–10 dB
quieter (typical of interview and broadcast clips) a loudness-following mouth opens too little. Each training
utterance therefore gets, independently:

* a gain, uniform in ``gain_db`` (the speech level varies over ±12 dB in real material);
* with probability ``p_noise``, white or pink noise at an SNR uniform in ``snr_db``;
* with probability ``p_band``, a telephone-to-studio band: a low-pass cut-off uniform in ``lowpass_hz`` and a
  high-pass cut-off uniform in ``highpass_hz`` (smooth raised-cosine edges over one octave, zero phase);
* with probability ``p_reverb``, a room: convolution with exponentially decaying noise whose reverberation
  time RT60 is uniform in ``rt60_s``, mixed with the dry signal at a direct-to-reverberant ratio uniform in
  ``drr_db``.

None of these moves the speech in time, so the frame-aligned targets stay valid. Everything is batched torch
on the batch's device; the transforms are a few lines each, so no audio-augmentation package (which would
bring librosa and numba) is needed. ``probability`` applies the whole chain to a fraction of utterances and
leaves the rest clean.
"""

import math

import torch
from torch import nn

from talkinghead.conventions import SAMPLE_RATE


def _uniform(low_high: tuple[float, float], count: int, generator: torch.Generator | None) -> torch.Tensor:
    low, high = low_high
    return low + (high - low) * torch.rand(count, generator=generator)


def _pink_noise(shape: tuple[int, int], generator: torch.Generator | None) -> torch.Tensor:
    """Noise with a 1/f power spectrum (per row, unit variance)."""
    spectrum = torch.fft.rfft(torch.randn(shape, generator=generator), dim=-1)
    frequencies = torch.arange(spectrum.shape[-1], dtype=torch.float32).clamp(min=1.0)
    noise = torch.fft.irfft(spectrum / frequencies.sqrt(), n=shape[-1], dim=-1)
    return noise / noise.std(dim=-1, keepdim=True).clamp(min=1e-8)


def _band_gain(frequencies: torch.Tensor, lowpass: torch.Tensor, highpass: torch.Tensor) -> torch.Tensor:
    """(B, F) amplitude response: 1 inside [highpass, lowpass], raised-cosine edges one octave wide outside."""
    octaves_above = torch.log2(frequencies[None].clamp(min=1.0) / lowpass[:, None]).clamp(0.0, 1.0)
    octaves_below = torch.log2(highpass[:, None] / frequencies[None].clamp(min=1.0)).clamp(0.0, 1.0)
    return 0.5 * (1 + torch.cos(math.pi * octaves_above)) * 0.5 * (1 + torch.cos(math.pi * octaves_below))


class SpeechAugmentation(nn.Module):
    """Batched random recording conditions (module docstring); the identity in ``eval()`` mode."""

    def __init__(
        self,
        probability: float = 0.8,
        gain_db: tuple[float, float] = (-15.0, 6.0),
        p_noise: float = 0.5,
        snr_db: tuple[float, float] = (10.0, 40.0),
        p_band: float = 0.5,
        lowpass_hz: tuple[float, float] = (3000.0, 8000.0),
        highpass_hz: tuple[float, float] = (60.0, 300.0),
        p_reverb: float = 0.4,
        rt60_s: tuple[float, float] = (0.15, 0.6),
        drr_db: tuple[float, float] = (0.0, 15.0),
        sample_rate: int = SAMPLE_RATE,
    ) -> None:
        super().__init__()
        self.probability, self.gain_db = probability, tuple(gain_db)
        self.p_noise, self.snr_db = p_noise, tuple(snr_db)
        self.p_band, self.lowpass_hz, self.highpass_hz = p_band, tuple(lowpass_hz), tuple(highpass_hz)
        self.p_reverb, self.rt60_s, self.drr_db = p_reverb, tuple(rt60_s), tuple(drr_db)
        self.sample_rate = sample_rate

    def forward(self, audio: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, S) speech → (B, S) speech under random conditions (unchanged in eval mode)."""
        if not self.training or self.probability <= 0:
            return audio
        batch, length = audio.shape
        chosen = torch.rand(batch, generator=generator) < self.probability
        x = audio.detach().float().cpu()
        x = self._reverb(x, generator)
        x = self._band(x, generator)
        x = self._noise(x, generator)
        x = x * (10 ** (_uniform(self.gain_db, batch, generator) / 20))[:, None]
        return torch.where(chosen[:, None], x.to(audio.device, audio.dtype), audio)

    def _rows(self, probability: float, batch: int, generator: torch.Generator | None) -> torch.Tensor:
        return torch.rand(batch, generator=generator) < probability

    def _noise(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        batch, length = x.shape
        white = torch.randn(x.shape, generator=generator)
        pink = _pink_noise((batch, length), generator)
        noise = torch.where(torch.rand(batch, 1, generator=generator) < 0.5, white, pink)
        level = (
            x.pow(2).mean(dim=1, keepdim=True).sqrt() * 10 ** (-_uniform(self.snr_db, batch, generator) / 20)[:, None]
        )
        return torch.where(self._rows(self.p_noise, batch, generator)[:, None], x + noise * level, x)

    def _band(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        batch, length = x.shape
        spectrum = torch.fft.rfft(x, dim=-1)
        frequencies = torch.fft.rfftfreq(length, d=1.0 / self.sample_rate)
        gain = _band_gain(
            frequencies, _uniform(self.lowpass_hz, batch, generator), _uniform(self.highpass_hz, batch, generator)
        )
        filtered = torch.fft.irfft(spectrum * gain, n=length, dim=-1)
        return torch.where(self._rows(self.p_band, batch, generator)[:, None], filtered, x)

    def _reverb(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        batch, length = x.shape
        rt60 = _uniform(self.rt60_s, batch, generator)
        taps = int(self.rt60_s[1] * self.sample_rate)
        time = torch.arange(taps, dtype=torch.float32) / self.sample_rate
        # RT60: the time the energy takes to fall by 60 dB, i.e. the amplitude by 10^-3
        tail = torch.randn(batch, taps, generator=generator) * torch.exp(-math.log(1000.0) * time[None] / rt60[:, None])
        tail = tail / tail.pow(2).sum(dim=1, keepdim=True).sqrt().clamp(min=1e-8)
        size = length + taps
        wet = torch.fft.irfft(torch.fft.rfft(x, n=size) * torch.fft.rfft(tail, n=size), n=size)[:, :length]
        dry_over_wet = 10 ** (_uniform(self.drr_db, batch, generator) / 20)
        wet = (
            wet * (x.pow(2).sum(dim=1) / wet.pow(2).sum(dim=1).clamp(min=1e-12)).sqrt()[:, None] / dry_over_wet[:, None]
        )
        return torch.where(self._rows(self.p_reverb, batch, generator)[:, None], x + wet, x)
