"""``talkinghead-data``: build the embedded corpus (``synth``), turn real videos into shards (``preprocess``),
summarise a shard folder (``inspect``) and export a clip as an mp4 (``export``).

User mistakes (missing folder, corrupt shard, bad arguments) end in one line on stderr and exit code 2.
"""

import argparse
import sys
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import torch

from talkinghead.atomic import write_png_atomic
from talkinghead.cli_conventions import add_common_arguments, configure_logging, parse_args, verbosity
from talkinghead.data.export import export_clip
from talkinghead.data.preprocess import PreprocessSettings, preprocess_videos
from talkinghead.data.preprocess.av_sync import AVSyncConfig
from talkinghead.data.preprocess.writer import REJECTED_CSV
from talkinghead.data.shards import CorruptShardError, iter_clips, load_index, verify_shards
from talkinghead.data.synthetic.synth import SynthConfig, build_corpus
from talkinghead.models.syncnet import load_syncnet

CONTACT_SHEET = "contact_sheet.png"
AV_CHECK_FLAGS = {  # the flags --no-av-check would leave without effect (None unless given): name → flag
    "syncnet_weights": "--syncnet-weights",
    "max_av_offset": "--max-av-offset",
    "min_av_confidence": "--min-av-confidence",
    "fix_av_offset": "--fix-av-offset",
}


def _require_suffix(flag: str, path: str | Path, suffix: str) -> None:
    """A one-line error unless ``path`` ends in ``suffix`` (any case): the written data has that format."""
    if Path(path).suffix.lower() != suffix:
        raise ValueError(f"{flag}: {path} must end in {suffix}, the format it is written in")


def _synth(args: argparse.Namespace) -> int:
    for image in args.images:
        if not Path(image).is_file():
            raise ValueError(f"--images: {image} is not a file")
    if args.clips < 1 or args.seconds <= 0:
        raise ValueError("--clips must be ≥ 1 and --seconds > 0")
    config = SynthConfig(
        clips=args.clips, seconds=args.seconds, seed=args.seed, images=tuple(args.images), frames=not args.no_frames
    )
    index = build_corpus(config, args.out, workers=args.workers, progress=verbosity(args) >= 0)
    sizes = ", ".join(f"{split} {len(ids)}" for split, ids in index["splits"].items())
    print(f"wrote {len(index['clips'])} clips in {len(index['shards'])} shards to {args.out} ({sizes})")
    return 0


def _preprocess(args: argparse.Namespace) -> int:
    if args.no_av_check:
        given = [flag for name, flag in AV_CHECK_FLAGS.items() if getattr(args, name) is not None]
        if given:
            raise ValueError(f"--no-av-check skips the A/V offset estimate; {', '.join(given)} would have no effect")
    if args.model != "builtin" and not Path(args.model).is_file():
        raise ValueError(f"--model: {args.model} is not a file (FaceVerse .npy) nor 'builtin'")
    if args.syncnet_weights is not None and not Path(args.syncnet_weights).is_file():
        raise ValueError(f"--syncnet-weights: {args.syncnet_weights} is not a file")
    max_offset = AVSyncConfig.max_offset if args.max_av_offset is None else args.max_av_offset
    if max_offset < 0:
        raise ValueError(f"--max-av-offset must be ≥ 0 frames, got {max_offset}")
    if args.syncnet_weights is not None:
        load_syncnet(args.syncnet_weights)  # a bad file is one error line before any video is touched
    defaults = AVSyncConfig()
    confidence = args.min_av_confidence
    av_sync = AVSyncConfig(
        max_offset=max_offset,
        min_envelope_r=defaults.min_envelope_r if confidence is None else confidence,
        min_syncnet_confidence=defaults.min_syncnet_confidence if confidence is None else confidence,
        fix=bool(args.fix_av_offset),
        enabled=not args.no_av_check,
    )
    source = args.source or Path(args.videos).stem or "video"
    settings = PreprocessSettings(
        source=source,
        model=args.model,
        av_sync=av_sync,
        syncnet_weights=None if args.syncnet_weights is None else str(args.syncnet_weights),
        videos_per_shard=args.videos_per_shard,
        seed=args.seed,
    )
    result = preprocess_videos(
        args.videos,
        args.out,
        settings,
        workers=args.workers,
        num_shards=args.num_shards,
        shard_index=args.shard_index,
        resume=args.resume,
        progress=verbosity(args) >= 0,
    )
    print(
        f"{result.processed} of {result.videos} videos processed ({result.frames} frames), "
        f"{result.shards_written} shards written; {result.rejected_rows} rejections in {args.out / REJECTED_CSV}"
    )
    if result.index_written:
        print(f"index: {result.clips} clips in {args.out / 'index.json'}")
    else:
        print("no clip in any finished shard yet: index.json not written")
    return 0


def _export(args: argparse.Namespace) -> int:
    _require_suffix("--out", args.out, ".mp4")
    print(f"wrote {export_clip(args.root, args.clip, args.out)}")
    return 0


def contact_sheet(root: Path, clips: int = 6, frames: int = 5) -> np.ndarray:
    """(H, W, 3) uint8: ``frames`` evenly spaced frames of the first ``clips`` clips with their landmarks."""
    rows = []
    framed = (clip for clip in iter_clips(root, fields=("frames", "landmarks")) if clip.frames is not None)
    for clip in islice(framed, clips):
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


def preprocessing_checks(metas: list[dict], min_mouth_r: float = 0.9) -> str:
    """Summary lines of the preprocessing's per-clip checks (mouth fit, A/V offset); empty for other corpora."""
    lines = []
    mouth = {m["clip_id"]: m["mouth_fit_r"] for m in metas if "mouth_fit_r" in m}
    if mouth:
        values = np.array(list(mouth.values()))
        low = sorted(clip for clip, r in mouth.items() if r < min_mouth_r)
        lines.append(
            f"  mouth fit r: mean {values.mean():.3f}, min {values.min():.3f}; "
            f"{len(low)} of {len(values)} clips below {min_mouth_r}" + (f" ({', '.join(low[:5])}…)" if low else "")
        )
    offsets = [m for m in metas if "av_offset_frames" in m]
    if offsets:
        methods = sorted({m["av_offset_method"] for m in offsets})
        frames = np.array([m["av_offset_frames"] for m in offsets])
        confidence = np.array([m["av_offset_confidence"] for m in offsets])
        shifted = sum(bool(m.get("av_offset_shifted")) for m in offsets)
        lines.append(
            f"  A/V offset ({'/'.join(methods)}): |offset| ≤ 1 frame in {int((np.abs(frames) <= 1).sum())} of "
            f"{len(frames)} clips, median confidence {np.median(confidence):.2f}, {shifted} shifted"
        )
    return "\n".join(lines)


def _inspect(args: argparse.Namespace) -> int:
    if args.sheet:
        _require_suffix("--sheet", args.sheet, ".png")
    root = Path(args.root)
    index = load_index(root)
    verify_shards(root, skip_bad=args.skip_bad, index=index)
    clips = index["clips"]
    seconds = sum(c["num_frames"] / c["fps"] for c in clips.values())
    print(
        f"{root}: {len(clips)} clips, {seconds / 3600:.3f} h, {len(index['identities'])} identities, "
        f"{len(index['shards'])} shards, {index['fps']} fps, {index['sample_rate']} Hz"
    )
    for split, ids in index["splits"].items():
        identities = {clips[i]["identity_id"] for i in ids}
        print(f"  {split:5s}: {len(ids)} clips, {len(identities)} identities")
    first = next(iter_clips(root, skip_bad=args.skip_bad), None)
    if first is None:
        raise ValueError(f"{root}: no readable clip (every shard is corrupt and was skipped)")
    for name in ("audio", "alpha", "beta", "pose", "lip_offsets", "landmarks", "frames"):
        value = getattr(first, name)
        if value is not None:
            print(f"  {name:11s} {str(value.dtype):8s} {tuple(value.shape)}  ({first.clip_id})")
    checks = preprocessing_checks([clip.meta for clip in iter_clips(root, fields=(), skip_bad=args.skip_bad)])
    if checks:
        print(checks)
    if not any(clip.get("has_frames", True) for clip in clips.values()):
        if args.sheet:
            raise ValueError(f"--sheet: {root} holds no clip with frames (a --no-frames corpus)")
        print("contact sheet: none, no clip has frames")
        return 0
    sheet = contact_sheet(root)
    out = Path(args.sheet) if args.sheet else root / CONTACT_SHEET
    write_png_atomic(torch.from_numpy(sheet).permute(2, 0, 1).float() / 255, out)
    print(f"contact sheet: {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="talkinghead-data", description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    synth = commands.add_parser("synth", help="build the embedded synthetic corpus as shards")
    synth.add_argument("--out", required=True, type=Path, help="output shard folder (resumes if present)")
    synth.add_argument("--clips", type=int, default=SynthConfig.clips, help="number of clips (default %(default)s)")
    synth.add_argument("--seconds", type=float, default=SynthConfig.seconds, help="clip length (s)")
    synth.add_argument("--seed", type=int, default=SynthConfig.seed, help="corpus seed (default %(default)s)")
    synth.add_argument("--images", nargs="*", default=[], help="extra portraits besides the bundled astronaut")
    synth.add_argument("--workers", type=int, default=2, help="parallel worker processes (default 2)")
    synth.add_argument(
        "--no-frames",
        action="store_true",
        help="speech and motion only, no video frames: a corpus for the facial-motion stage (stage 1), ~40x faster",
    )
    synth.set_defaults(run=_synth)
    pre = commands.add_parser("preprocess", help="turn a folder or list of videos into shards (HDTF, VoxCeleb, own)")
    pre.add_argument(
        "--videos",
        required=True,
        type=Path,
        help="folder (searched recursively), one video, or list file (.txt/.csv/.tsv/.lst)",
    )
    pre.add_argument("--out", required=True, type=Path, help="output shard folder")
    pre.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    pre.add_argument("--num-shards", type=int, default=1, help="job-array size: split the work into N jobs")
    pre.add_argument("--shard-index", type=int, default=0, help="which of the --num-shards jobs this is (0-based)")
    pre.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    pre.add_argument(
        "--videos-per-shard",
        type=int,
        default=PreprocessSettings.videos_per_shard,
        help="videos per shard (default %(default)s)",
    )
    pre.add_argument(
        "--syncnet-weights",
        type=Path,
        help="SyncNet syncnet_v2.model: estimate A/V offsets with SyncNet (default: speech envelope vs lips)",
    )
    pre.add_argument(
        "--max-av-offset",
        type=int,
        help="reject (or shift) clips whose trusted A/V offset exceeds this many frames "
        f"(default {AVSyncConfig.max_offset})",
    )
    pre.add_argument(
        "--min-av-confidence",
        type=float,
        help=f"trust an offset estimate from this confidence on (default: r {AVSyncConfig.min_envelope_r} for the "
        f"envelope, LSE-C {AVSyncConfig.min_syncnet_confidence} for SyncNet)",
    )
    pre.add_argument(
        "--fix-av-offset",
        action="store_true",
        default=None,
        help="shift out-of-sync clips' audio instead of rejecting",
    )
    pre.add_argument(
        "--no-av-check",
        action="store_true",
        help="skip the A/V offset estimate (an error with the four A/V options above, which would have no effect)",
    )
    pre.add_argument("--model", default="builtin", help="'builtin' or a FaceVerse .npy file (default builtin)")
    pre.add_argument("--source", help="meta.json source name (default: the --videos folder/list name)")
    pre.add_argument("--seed", type=int, default=0, help="identity-split seed (default 0)")
    pre.set_defaults(run=_preprocess)
    export = commands.add_parser("export", help="write one clip of a shard folder as an mp4 with its audio")
    export.add_argument("root", help="shard folder with index.json")
    export.add_argument("--clip", required=True, help="clip id")
    export.add_argument("--out", required=True, type=Path, help="output .mp4")
    export.set_defaults(run=_export)
    inspect = commands.add_parser("inspect", help="summarise a shard folder and write a contact sheet")
    inspect.add_argument("root", help="shard folder with index.json")
    inspect.add_argument("--sheet", help=f"contact-sheet path, a .png (default ROOT/{CONTACT_SHEET})")
    inspect.add_argument("--skip-bad", action="store_true", help="skip corrupt shards instead of failing")
    inspect.set_defaults(run=_inspect)
    for command in (synth, pre, export, inspect):
        add_common_arguments(command, subcommand=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    configure_logging(verbosity(args))
    try:
        return args.run(args)
    except (CorruptShardError, FileNotFoundError, ValueError, OSError) as error:
        print(f"talkinghead-data {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
