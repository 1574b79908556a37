"""talkinghead: a trainable implementation of VividTalk (one-shot audio-driven talking heads)."""

__version__ = "0.1.0"
