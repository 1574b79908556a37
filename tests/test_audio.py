"""Audio front end: loading any container to 16 kHz mono, and the frame-aligned encoders (VividTalk §3.2).

Signals are two tones, 440 Hz on the left channel and 1000 Hz on the right (0.6 peak each), so the
expected mono signal at 16 kHz is their mean, computed analytically. Comparisons skip the first and last
10 ms (resampling and codec edge effects). Tolerances: lossless (WAV/FLAC) SNR > 50 dB; lossy codecs
(Vorbis written with soundfile; MP3, AAC, Opus written with PyAV) correlation > 0.99 (MP3 via LAME comes back
at about 0.95 gain and Vorbis at 8 kHz near 29 dB SNR, hence correlation); lengths within 1 % of 16000.
"""

import pickle

import av
import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F  # noqa: N812
from transformers import Wav2Vec2Config

from talkinghead.audio import (
    AudioError,
    MelEncoder,
    Wav2Vec2Encoder,
    build_audio_encoder,
    load_audio,
    num_video_frames,
)

EDGE = 160
TONES = (440.0, 1000.0)
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
    "layerdrop": 0.0,
}
TINY_CONV = {"conv_dim": (32, 32), "conv_kernel": (10, 3), "conv_stride": (5, 2)}
BASE_CONV = {"conv_dim": (16,) * 7, "conv_kernel": (10, 3, 3, 3, 3, 2, 2), "conv_stride": (5, 2, 2, 2, 2, 2, 2)}


def tones(rate: int, channels: int = 2, seconds: float = 1.0) -> np.ndarray:
    """(channels, S) float32: channel c is a 0.6-peak sine at TONES[c % 2]."""
    t = np.arange(round(rate * seconds)) / rate
    return np.stack([0.6 * np.sin(2 * np.pi * TONES[c % 2] * t) for c in range(channels)]).astype(np.float32)


def expected_mono(num_samples: int, channels: int = 2) -> np.ndarray:
    t = np.arange(num_samples) / 16000
    return np.mean([0.6 * np.sin(2 * np.pi * TONES[c % 2] * t) for c in range(channels)], axis=0)


def snr_db(signal: np.ndarray, reference: np.ndarray) -> float:
    signal, reference = signal[EDGE:-EDGE], reference[EDGE:-EDGE]
    return float(10 * np.log10(np.mean(reference**2) / np.mean((signal - reference) ** 2)))


def correlation(signal: np.ndarray, reference: np.ndarray) -> float:
    return float(np.corrcoef(signal[EDGE:-EDGE], reference[EDGE:-EDGE])[0, 1])


def write_with_pyav(path, container_format: str, codec: str, rate: int, audio: bool = True, video: bool = False):
    """Two-tone stereo (and/or a 1 s 64² H.264 video) written with PyAV's bundled FFmpeg."""
    for name in (codec,) * audio + ("libx264",) * video:
        try:
            av.codec.Codec(name, "w")
        except av.codec.codec.UnknownCodecError:
            pytest.skip(f"PyAV's FFmpeg has no {name} encoder")
    with av.open(str(path), "w", format=container_format) as container:
        streams = []
        if video:
            stream = container.add_stream("libx264", rate=25)
            stream.width = stream.height = 64
            stream.pix_fmt = "yuv420p"
            frames = []
            for i in range(25):
                frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 8 * i, np.uint8), format="rgb24")
                frame.pts = i
                frames.append(frame)
            streams.append((stream, frames))
        if audio:
            stream = container.add_stream(codec, rate=rate, layout="stereo")
            samples, frames = tones(rate), []
            for start in range(0, samples.shape[1], 1000):
                chunk = np.ascontiguousarray(samples[:, start : start + 1000])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                frame.sample_rate, frame.pts = rate, start
                frames.append(frame)
            streams.append((stream, frames))
        for stream, frames in streams:
            for frame in [*frames, None]:
                container.mux(stream.encode(frame))


@pytest.mark.parametrize(
    ("suffix", "rate", "channels", "subtype"),
    [
        ("wav", 8000, 2, "PCM_16"),
        ("wav", 44100, 1, "PCM_24"),
        ("wav", 48000, 4, "FLOAT"),
        ("flac", 44100, 2, "PCM_16"),
        ("flac", 48000, 2, "PCM_24"),
    ],
)
def test_lossless_files_load_as_16k_mono(tmp_path, suffix, rate, channels, subtype):
    path = tmp_path / f"speech.{suffix}"
    sf.write(path, tones(rate, channels).T, rate, subtype=subtype)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - 16000) <= 160
    assert snr_db(audio, expected_mono(audio.size, channels)) > 50


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_ogg_vorbis_loads(tmp_path, rate):
    path = tmp_path / "speech.ogg"
    sf.write(path, tones(rate).T, rate, format="OGG", subtype="VORBIS")
    audio = load_audio(path)
    assert abs(audio.size - 16000) <= 160
    assert correlation(audio, expected_mono(audio.size)) > 0.99


@pytest.mark.parametrize(
    ("name", "container_format", "codec", "rate", "video"),
    [
        ("speech.mp3", "mp3", "libmp3lame", 8000, False),
        ("speech.mp3", "mp3", "libmp3lame", 44100, False),
        ("speech.m4a", "ipod", "aac", 48000, False),
        ("speech.m4a", "ipod", "aac", 8000, False),
        ("speech.opus", "ogg", "libopus", 48000, False),
        ("talk.mp4", "mp4", "aac", 44100, True),
        ("talk.mkv", "matroska", "libmp3lame", 48000, True),
    ],
)
def test_lossy_and_video_containers_load(tmp_path, name, container_format, codec, rate, video):
    path = tmp_path / name
    write_with_pyav(path, container_format, codec, rate, video=video)
    audio = load_audio(path)
    assert abs(audio.size - 16000) <= 160
    assert correlation(audio, expected_mono(audio.size)) > 0.99


def assert_audio_error(path, message: str) -> None:
    with pytest.raises(AudioError) as caught:
        load_audio(path)
    text = str(caught.value)
    assert message in text and str(path) in text and "\n" not in text


def test_missing_file(tmp_path):
    assert_audio_error(tmp_path / "nothing.wav", "no such file")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.touch()
    assert_audio_error(path, "empty file (0 bytes)")


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are not samples\n")
    assert_audio_error(path, "not decodable as audio")


def test_header_only_wav(tmp_path):
    path = tmp_path / "header.wav"
    sf.write(path, np.zeros((0, 1), np.float32), 16000)
    assert_audio_error(path, "no samples")


def test_silent_file(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.full(16000, 2e-5, np.float32), 16000, subtype="FLOAT")
    assert_audio_error(path, "silent: peak 2e-05 below 0.0001 full scale")


def test_shorter_than_one_frame(tmp_path):
    path = tmp_path / "blip.wav"
    sf.write(path, tones(16000, 1, seconds=0.03).T, 16000)
    assert_audio_error(path, "too short: 480 samples")


def test_non_finite_samples_and_error_pickles(tmp_path):
    path = tmp_path / "broken.wav"
    samples = tones(16000, 1).T.copy()
    samples[100] = np.nan
    sf.write(path, samples, 16000, subtype="FLOAT")
    assert_audio_error(path, "contains NaN or infinite samples")
    error = AudioError(f"audio {str(path)!r}: silent")
    assert str(pickle.loads(pickle.dumps(error))) == str(error)


def test_video_without_audio(tmp_path):
    path = tmp_path / "mute.mp4"
    write_with_pyav(path, "mp4", "aac", 16000, audio=False, video=True)
    assert_audio_error(path, "no audio stream")


def test_num_video_frames_floors_to_whole_frames():
    assert [num_video_frames(s) for s in (0, 639, 640, 640 * 7 + 17, 640 * 8 - 1)] == [0, 0, 1, 7, 7]
    assert num_video_frames(48000, fps=30, sample_rate=48000) == 30


def tiny_wav2vec2(conv: dict = BASE_CONV, **kwargs) -> Wav2Vec2Encoder:
    torch.manual_seed(0)
    return Wav2Vec2Encoder.from_config(Wav2Vec2Config(**TINY, **conv), **kwargs)


@pytest.mark.parametrize("frames", [1, 7, 101])
@pytest.mark.parametrize("extra", [17, -100])
def test_encoder_shapes_for_odd_lengths(frames, extra):
    waveform = torch.randn(2, 640 * frames + extra) * 0.1
    encoders = [MelEncoder(), MelEncoder(n_mels=40, frames_per_video_frame=2), tiny_wav2vec2()]
    if frames < 101:
        encoders.append(tiny_wav2vec2(TINY_CONV))
    for encoder in encoders:
        assert encoder(waveform, frames).shape == (2, frames, encoder.output_dim)
    assert [e.output_dim for e in encoders[:3]] == [320, 80, 32]


def test_mel_follows_a_chirp():
    t = torch.arange(32000) / 16000
    chirp = 0.5 * torch.sin(2 * torch.pi * (200 * t + (3800 / 4) * t**2))
    features = MelEncoder()(chirp[None], 50).reshape(50, 4, 80)
    peak = features.argmax(dim=-1).flatten()
    assert (peak.diff() >= 0).all() and peak[-1] - peak[0] > 40


def test_mel_row_t_describes_samples_of_frame_t():
    """A burst in frame 6's span peaks in row 6; the 25 ms windows reach 120 samples into rows 5 and 7 only."""
    waveform = torch.zeros(1, 640 * 10)
    waveform[0, 640 * 6 : 640 * 7] = 0.5 * torch.sin(torch.arange(640) * 0.3)
    energy = MelEncoder()(waveform, 10).mean(dim=-1)[0]
    assert energy.argmax() == 6 and energy[6] - max(energy[5], energy[7]) > 0.5
    assert torch.allclose(energy[:5], torch.full((5,), -1.5)) and torch.allclose(energy[8:], torch.full((2,), -1.5))


def test_mel_is_local_with_fixed_normalisation():
    waveform = torch.randn(1, 640 * 20) * 0.1
    encoder = MelEncoder()
    assert torch.allclose(encoder(waveform[:, : 640 * 10], 10)[:, :9], encoder(waveform, 20)[:, :9], atol=1e-5)


def test_wav2vec2_features_are_two_per_video_frame():
    encoder = tiny_wav2vec2()
    assert (encoder.stride, encoder.receptive_field, encoder.pad) == (320, 400, (40, 40))
    waveform = encoder.crop_to_frames(torch.randn(1, 640 * 9 + 300), 9)
    assert encoder.model.feature_extractor(F.pad(waveform, encoder.pad)).shape[-1] == 18


def test_wav2vec2_freezes_feature_encoder_and_trains_transformer():
    encoder = tiny_wav2vec2().train()
    assert all(not p.requires_grad for p in encoder.model.feature_extractor.parameters())
    encoder(torch.randn(2, 640 * 5 + 17) * 0.1, 5).square().mean().backward()
    for layer in encoder.model.encoder.layers:
        grads = [p.grad for p in layer.parameters()]
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in encoder.model.feature_extractor.parameters())


def test_wav2vec2_batch_equals_items():
    """Equal-length items: batch rows equal the items encoded alone (float32, atol 1e-5).

    Normalisation is per item, and the group norm of the first conv layer is per item and channel, so
    nothing mixes across the batch; an item zero-padded to a longer batch would differ (no padding mask).
    """
    encoder = tiny_wav2vec2().eval()
    waveform = torch.randn(3, 640 * 12 + 5) * torch.tensor([[0.05], [0.3], [1.0]])
    with torch.no_grad():
        batch = encoder(waveform, 12)
        items = torch.cat([encoder(waveform[i : i + 1], 12) for i in range(3)])
    assert torch.allclose(batch, items, atol=1e-5)


def test_wav2vec2_loads_a_local_directory_and_selects_layers(tmp_path):
    encoder = tiny_wav2vec2().eval()
    encoder.model.save_pretrained(tmp_path)
    loaded = build_audio_encoder("wav2vec2", name_or_path=str(tmp_path)).eval()
    middle = Wav2Vec2Encoder(tmp_path, layer=1).eval()
    waveform = torch.randn(1, 640 * 4) * 0.1
    with torch.no_grad():
        assert torch.allclose(loaded(waveform, 4), encoder(waveform, 4), atol=1e-6)
        assert middle(waveform, 4).shape == (1, 4, 32)


def test_build_audio_encoder_kinds():
    assert isinstance(build_audio_encoder(), MelEncoder)
    assert isinstance(build_audio_encoder("mel", n_mels=40), MelEncoder)
    with pytest.raises(ValueError, match="mel, wav2vec2"):
        build_audio_encoder("hubert")
    with pytest.raises(ValueError, match="exactly one"):
        Wav2Vec2Encoder()
