"""How much of each real clip's mouth opening its speech predicts: a yardstick for the same-identity mouth r.

For every video of ``--videos`` (a folder, or a list file with identities as ``talkinghead-data preprocess``
takes it; speech from the video's own track or a same-stem ``.wav``/``.flac`` beside it), MediaPipe FaceMesh
tracks the inner-lip opening at 25 fps over the whole clip, and a ridge regression from log-mel context predicts
it (:mod:`talkinghead.metrics.mouth_predictability`): fitted on the clip's own first 70 % and scored (Pearson r)
on its last 30 % (same speaker), or fitted on the other identities' clips and scored on all of it (other
speakers). The clip's lip-sync r (opening against the speech envelope,
:func:`talkinghead.metrics.articulation.lip_sync_r`) is listed beside them. Tracking shows a progress bar (``-q``
hides it); the table is printed as markdown and, with ``--csv``, written as CSV. Weight-free: nothing is
downloaded.

    python tools/mouth_predictability.py --videos real/identities.tsv --csv outputs/predictability.csv
"""

import argparse
import csv
import io
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from talkinghead.audio.io import AudioError
from talkinghead.cli_conventions import add_common_arguments, configure_logging, verbosity
from talkinghead.conventions import FPS, SAMPLE_RATE
from talkinghead.data.preprocess.discover import discover_videos
from talkinghead.evaluation.report import write_text_atomic
from talkinghead.evaluation.video_metrics import analyse_video, clip_speech
from talkinghead.metrics.articulation import inner_lip_opening, lip_sync_r, speech_envelope
from talkinghead.metrics.mouth_predictability import mouth_predictability, speech_features

COLUMNS = ("clip", "identity", "frames", "lip_sync_r", "same_speaker_r", "other_speakers_r")


def table(rows: list[dict]) -> str:
    lines = ["| clip | identity | frames | lip-sync r | same speaker r | other speakers r |", "|---" * 6 + "|"]
    for row in rows:
        lines.append(
            f"| {row['clip']} | {row['identity']} | {row['frames']} | {row['lip_sync_r']:.2f} | "
            f"{row['same_speaker_r']:.2f} | {row['other_speakers_r']:.2f} |"
        )
    means = [np.nanmean([row[key] for row in rows]) for key in COLUMNS[3:]]
    lines.append("| mean | | | " + " | ".join(f"{value:.2f}" for value in means) + " |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", required=True, help="folder of real clips, or a list file (path<TAB>identity)")
    parser.add_argument("--csv", type=Path, help="also write the table here as CSV")
    add_common_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(verbosity(args))
    try:
        videos = discover_videos(args.videos)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.csv is not None and (args.csv.is_dir() or not args.csv.parent.is_dir()):  # before minutes of tracking
        problem = f"{args.csv} is a folder" if args.csv.is_dir() else f"folder {str(args.csv.parent)!r} does not exist"
        print(f"error: --csv: {problem}", file=sys.stderr)
        return 2
    if len({video.identity for video in videos}) < 2:
        print("error: --videos: at least two identities are needed for the other-speakers fit", file=sys.stderr)
        return 2
    clips, identities, sync = {}, {}, {}
    for video in tqdm(videos, desc="tracking", unit="clip", disable=verbosity(args) < 0):
        try:
            speech = clip_speech(video.path)
        except AudioError as error:
            print(f"error: {video.key}: {str(error).split(': ', 1)[-1]}", file=sys.stderr)
            return 2
        track = analyse_video(video.path).track
        if not track.has_face:
            print(f"error: {video.key}: no face found in any frame", file=sys.stderr)
            return 2
        opening = inner_lip_opening(track.landmarks)
        frames = min(len(opening), int(len(speech) * FPS) // SAMPLE_RATE)
        clips[video.key] = (speech_features(speech, frames), opening[:frames])
        identities[video.key] = video.identity
        sync[video.key] = lip_sync_r(opening[:frames], speech_envelope(speech, frames))
    results = mouth_predictability(clips, identities)
    rows = [
        {
            "clip": name,
            "identity": identities[name],
            "frames": result.frames,
            "lip_sync_r": sync[name],
            "same_speaker_r": result.same_speaker,
            "other_speakers_r": result.other_speakers,
        }
        for name, result in results.items()
    ]
    text = table(rows)
    if args.csv is not None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        try:
            write_text_atomic(args.csv, buffer.getvalue())
        except ValueError as error:
            print(f"error: --csv: {error}", file=sys.stderr)
            return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
