"""Data: speech and motion synthesis for the embedded corpus, clips, shards and the data module."""
