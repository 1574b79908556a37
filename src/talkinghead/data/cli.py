"""``talkinghead-data``: build the embedded corpus (``synth``) and summarise a shard folder (``inspect``).

User mistakes (missing folder, corrupt shard, bad arguments) end in one line on stderr and exit code 2.
"""

import argparse
import sys
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import torch

from talkinghead.data.shards import CorruptShardError, iter_clips, load_index, verify_shards
from talkinghead.data.synth import SynthConfig, build_corpus
from talkinghead.render.preview import write_png_atomic

CONTACT_SHEET = "contact_sheet.png"


def _synth(args: argparse.Namespace) -> int:
    for image in args.images:
        if not Path(image).is_file():
            raise ValueError(f"--images: {image} is not a file")
    if args.clips < 1 or args.seconds <= 0:
        raise ValueError("--clips must be ≥ 1 and --seconds > 0")
    config = SynthConfig(clips=args.clips, seconds=args.seconds, seed=args.seed, images=tuple(args.images))
    index = build_corpus(config, args.out, workers=args.workers)
    sizes = ", ".join(f"{split} {len(ids)}" for split, ids in index["splits"].items())
    print(f"wrote {len(index['clips'])} clips in {len(index['shards'])} shards to {args.out} ({sizes})")
    return 0


def contact_sheet(root: Path, clips: int = 6, frames: int = 5) -> np.ndarray:
    """(H, W, 3) uint8: ``frames`` evenly spaced frames of the first ``clips`` clips with their landmarks."""
    rows = []
    for clip in islice(iter_clips(root, fields=("frames", "landmarks")), clips):
        picks = np.linspace(0, clip.num_frames - 1, frames).round().astype(int)
        tiles = []
        for t in picks:
            tile = np.ascontiguousarray(clip.frames[t])
            for u, v in clip.landmarks[t]:
                cv2.circle(tile, (int(u), int(v)), 1, (0, 255, 0), -1)
            tiles.append(tile)
        rows.append(np.concatenate(tiles, axis=1))
    if not rows:
        raise ValueError(f"{root} holds no clips with frames")
    return np.concatenate(rows, axis=0)


def _inspect(args: argparse.Namespace) -> int:
    root = Path(args.root)
    index = load_index(root)
    verify_shards(root, skip_bad=args.skip_bad, index=index)
    clips = index["clips"]
    seconds = sum(c["num_frames"] / c["fps"] for c in clips.values())
    print(f"{root}: {len(clips)} clips, {seconds / 3600:.3f} h, {len(index['identities'])} identities, "
          f"{len(index['shards'])} shards, {index['fps']} fps, {index['sample_rate']} Hz")
    for split, ids in index["splits"].items():
        identities = {clips[i]["identity_id"] for i in ids}
        print(f"  {split:5s}: {len(ids)} clips, {len(identities)} identities")
    first = next(iter_clips(root, skip_bad=args.skip_bad))
    for name in ("audio", "alpha", "beta", "pose", "lip_offsets", "landmarks", "frames"):
        value = getattr(first, name)
        if value is not None:
            print(f"  {name:11s} {str(value.dtype):8s} {tuple(value.shape)}  ({first.clip_id})")
    sheet = contact_sheet(root)
    out = Path(args.sheet) if args.sheet else root / CONTACT_SHEET
    write_png_atomic(torch.from_numpy(sheet).permute(2, 0, 1).float() / 255, out)
    print(f"contact sheet: {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="talkinghead-data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    synth = commands.add_parser("synth", help="build the embedded synthetic corpus as shards")
    synth.add_argument("--out", required=True, type=Path, help="output shard folder (resumes if present)")
    synth.add_argument("--clips", type=int, default=SynthConfig.clips, help="number of clips (default %(default)s)")
    synth.add_argument("--seconds", type=float, default=SynthConfig.seconds, help="clip length (s)")
    synth.add_argument("--seed", type=int, default=SynthConfig.seed, help="corpus seed (default %(default)s)")
    synth.add_argument("--images", nargs="*", default=[], help="extra portraits besides the bundled astronaut")
    synth.add_argument("--workers", type=int, default=2, help="parallel worker processes (default 2)")
    synth.set_defaults(run=_synth)
    inspect = commands.add_parser("inspect", help="summarise a shard folder and write a contact sheet")
    inspect.add_argument("root", help="shard folder with index.json")
    inspect.add_argument("--sheet", help=f"contact-sheet path (default ROOT/{CONTACT_SHEET})")
    inspect.add_argument("--skip-bad", action="store_true", help="skip corrupt shards instead of failing")
    inspect.set_defaults(run=_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (CorruptShardError, FileNotFoundError, ValueError, OSError) as error:
        print(f"talkinghead-data {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
