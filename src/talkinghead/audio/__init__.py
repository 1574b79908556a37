"""Audio front end (VividTalk §3.2): speech → 16 kHz mono → ``A`` (B, T_video, C) at the video frame rate.

:func:`load_audio` decodes any common container to 16 kHz mono; the encoders (:func:`build_audio_encoder`:
``"mel"`` or ``"wav2vec2"``, the paper's "pre-trained audio extractor [1] (wav2vec 2.0)") map a waveform to
one feature vector per video frame, row ``t`` describing samples ``[t·640, (t+1)·640)`` at 25 fps.
"""

from talkinghead.audio.encoders import AudioEncoder, MelEncoder, Wav2Vec2Encoder, build_audio_encoder
from talkinghead.audio.io import FPS, SAMPLE_RATE, SILENCE_PEAK, AudioError, load_audio, num_video_frames

__all__ = [
    "FPS",
    "SAMPLE_RATE",
    "SILENCE_PEAK",
    "AudioEncoder",
    "AudioError",
    "MelEncoder",
    "Wav2Vec2Encoder",
    "build_audio_encoder",
    "load_audio",
    "num_video_frames",
]
