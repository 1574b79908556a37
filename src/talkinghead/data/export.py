"""Export a shard clip as an mp4 (its 256² frames with its audio) — to look at a clip, or to feed a
preprocessed or synthetic clip back into ``talkinghead-data preprocess`` (the round-trip test)."""

from pathlib import Path

from talkinghead.data.shards import ShardReader, load_index
from talkinghead.media import VideoWriter


def export_clip(root: str | Path, clip_id: str, out: str | Path) -> Path:
    """Write clip ``clip_id`` of the shard folder ``root`` to ``out`` (H.264 + AAC, the clip's fps)."""
    root = Path(root)
    index = load_index(root)
    if clip_id not in index["clips"]:
        raise ValueError(f"{root} has no clip {clip_id!r}")
    with ShardReader(root / index["clips"][clip_id]["shard"]) as reader:
        clip = reader.load_clip(clip_id, ("audio", "frames"))
    if clip.frames is None:
        raise ValueError(f"clip {clip_id} has no frames to export")
    with VideoWriter(out, fps=int(round(clip.fps)), audio=clip.audio, sample_rate=clip.sample_rate) as writer:
        writer.write(clip.frames)
    return Path(out)
