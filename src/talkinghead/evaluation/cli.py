"""``talkinghead-evaluate``: VividTalk's Table 1 metrics (§4.1) and weight-free metrics for generated videos.

Prints the markdown tables; with ``--out report.csv`` also writes the per-video CSV and ``report.md``
beside it (both atomically). Metrics whose weights are not supplied read ``n/a (weights not supplied)``.
User mistakes (missing file, not a video, unusable weights, unwritable output) end in one line on stderr
and exit code 2. See docs/EVALUATION.md.
"""

import argparse
import sys
from pathlib import Path

import torch

from talkinghead.audio.io import AudioError
from talkinghead.cli_conventions import add_common_arguments, configure_logging, device_problem, verbosity
from talkinghead.evaluation.evaluate import Networks, check_videos, collect_jobs, evaluate
from talkinghead.evaluation.fid import WEIGHTS_FILE, load_inception
from talkinghead.evaluation.identity import load_identity_network
from talkinghead.evaluation.report import csv_text, markdown_tables, summary_rows, write_text_atomic
from talkinghead.media import VideoError
from talkinghead.models.syncnet import load_syncnet
from talkinghead.models.weights import WeightsError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="talkinghead-evaluate", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--generated", nargs="+", required=True, metavar="DIR|FILE", help="a folder of generated videos, or video files"
    )
    parser.add_argument(
        "--reference",
        metavar="DIR",
        help="folder with NAME.mp4 (real video: same-identity) and/or NAME.png|jpg (portrait)",
    )
    parser.add_argument("--syncnet-weights", metavar="F", help="syncnet_v2.model state dict (LSE-D / LSE-C)")
    parser.add_argument(
        "--inception-weights", metavar="F", help=f"FID Inception weights, pytorch-fid's {WEIGHTS_FILE} (FID)"
    )
    parser.add_argument(
        "--identity-weights", metavar="F", help="ArcFace IResNet state dict, insightface's backbone.pth (CSIM)"
    )
    parser.add_argument("--out", type=Path, metavar="report.csv", help="write the CSV here and the tables to report.md")
    parser.add_argument("--method", default="talkinghead", help="row label in Table 1 (default %(default)s)")
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        choices=("cpu", "cuda"),
        help="device for SyncNet and Inception (default %(default)s)",
    )
    add_common_arguments(parser)
    return parser


def _load_networks(args: argparse.Namespace) -> Networks:
    networks = Networks(device=args.device)
    if args.syncnet_weights:
        networks.syncnet = load_syncnet(args.syncnet_weights).to(args.device)
    if args.inception_weights:
        networks.inception = load_inception(args.inception_weights).to(args.device)
    if args.identity_weights:
        networks.identity = load_identity_network(args.identity_weights)
    return networks


def run(args: argparse.Namespace) -> int:
    if problem := device_problem(args.device):
        raise ValueError(problem)
    if args.out is not None and not args.out.parent.is_dir():
        raise ValueError(f"--out {str(args.out)!r}: output folder does not exist")
    if args.out is not None and args.out.suffix.lower() == ".md":
        raise ValueError(f"--out {str(args.out)!r}: give the CSV path; the tables go beside it as .md")
    jobs = collect_jobs(args.generated, args.reference)
    check_videos(jobs)
    networks = _load_networks(args)
    rows, fid = evaluate(jobs, networks, progress=verbosity(args) >= 0)
    summaries = summary_rows(rows, fid)
    tables = markdown_tables(summaries, args.method)
    if args.out is not None:
        write_text_atomic(args.out, csv_text(rows + summaries))
        write_text_atomic(args.out.with_suffix(".md"), tables)
    print(tables)
    if args.out is not None:
        print(f"wrote {args.out} ({len(rows)} videos) and {args.out.with_suffix('.md')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(verbosity(args))
    try:
        return run(args)
    except (WeightsError, VideoError, AudioError, ValueError, OSError) as error:
        print(f"talkinghead-evaluate: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
