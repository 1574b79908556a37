"""Measure how a set of checkpoints articulates on real people, with weight-free metrics only.

Two settings, both judged from the outside by MediaPipe FaceMesh (:mod:`talkinghead.metrics.articulation`):

* **same identity**: for each real clip (a video with its speech, or a same-stem ``.wav``/``.flac`` beside
  it), its first ``--seconds`` at 25 fps become ``real/NAME.mp4``, frame 0 the portrait and its speech the input;
  the video generated with ``--pose still`` is compared with the real one (mouth-opening r and amplitude ratio,
  LMD), so only the mouth is judged;
* **unseen portraits**: every ``--portraits`` image × every ``--speech`` recording (cut to ``--seconds``), one
  video per ``--seeds`` seed with generated head pose: mouth-opening spread, lip-sync r against the speech,
  head motion, frames without a face.

The real clips are measured too (their opening spread, lip-sync r and head motion), the yardstick for the
second setting. Writes ``OUT/report.csv`` (every video, ``talkinghead-evaluate``'s columns) and prints a
markdown summary — each measurement's mean and range, then how many videos meet each real-people goal of
``docs/RESULTS.md`` (:data:`GOALS`) — also saved as ``OUT/summary.md``; nothing is written outside ``OUT``. A run
first removes what an earlier one wrote there (:data:`GENERATED_FOLDERS` and the two reports), nothing else.
Inputs it cannot use (a missing file, ``--portraits`` without ``--speech`` or the reverse, no inputs, checkpoints
or media the generator refuses) end in one line on stderr and exit code 2, before anything is written: every
recording is read and every face found and fitted first (:func:`check_media`).

    python tools/articulation_check.py --checkpoints outputs/demo/checkpoints --clips real/*.mp4 \\
        --portraits photos/*.png --speech speech/*.wav --out outputs/articulation
"""

import argparse
import functools
import shutil
import sys
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

from talkinghead.audio.io import AudioError, load_audio
from talkinghead.audio.spectrum import CORPUS_SPECTRUM_DB
from talkinghead.cli_conventions import add_common_arguments, configure_logging, verbosity
from talkinghead.conventions import FPS, SAMPLE_RATE
from talkinghead.evaluation.evaluate import Networks, collect_jobs, evaluate
from talkinghead.evaluation.report import CROSS, SAME, csv_text, write_text_atomic
from talkinghead.evaluation.video_metrics import clip_speech
from talkinghead.media import VideoError, VideoWriter, iter_video_frames
from talkinghead.pipeline import GenerationParams, TalkingHeadPipeline
from talkinghead.pipeline.inputs import GenerationInputError


def cut_clip(video: Path, seconds: float, out: Path) -> tuple[Path, Path]:
    """``out/real/NAME.mp4`` (first ``seconds`` at 25 fps with its speech) and ``out/portraits/NAME.png``."""
    speech = clip_speech(video)[: int(seconds * SAMPLE_RATE)]
    frames = []
    for frame in iter_video_frames(video, fps=FPS):
        frames.append(frame)
        if len(frames) >= int(seconds * FPS):
            break
    real, portrait = out / "real" / f"{video.stem}.mp4", out / "portraits" / f"{video.stem}.png"
    for path in (real, portrait):
        path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(real, FPS, speech, SAMPLE_RATE) as writer:
        writer.write(np.stack(frames))
    Image.fromarray(frames[0]).save(portrait)
    return real, portrait


def cut_speech(path: Path, seconds: float, out: Path) -> Path:
    target = out / "speech" / f"{path.stem}.wav"
    target.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(target, load_audio(path)[: int(seconds * SAMPLE_RATE)], SAMPLE_RATE)
    return target


def _values(rows: list[dict], key: str) -> list[float]:
    return [float(row[key]) for row in rows if isinstance(row.get(key), (int, float))]


def _stat(rows: list[dict], key: str) -> str:
    values = _values(rows, key)
    if not values:
        return "n/a"
    return f"{np.mean(values):.3f} (min {np.min(values):.3f}, max {np.max(values):.3f})"


# The real-people goals (docs/RESULTS.md, "Real people"): setting, column, test, wording.
GOALS = (
    ("same", "mouth_r", lambda value: value >= 0.5, "mouth-opening r ≥ 0.5"),
    ("same", "mouth_amplitude_ratio", lambda value: 0.8 <= value <= 1.2, "amplitude ratio in 0.8–1.2"),
    ("cross", "mouth_open_std", lambda value: value >= 0.02, "mouth-opening std ≥ 0.02"),
    ("cross", "lip_sync_r", lambda value: value >= 0.3, "lip-sync r ≥ 0.3"),
    ("cross", "head_motion", lambda value: value >= 0.06, "head motion ≥ 0.06"),
    ("cross", "frames_without_face", lambda value: value == 0, "a face in every frame"),
)


def goal_lines(same_rows: list[dict], cross_rows: list[dict]) -> list[str]:
    """One table row per goal: how many videos meet it (a NaN meets none), and the same-identity values."""
    lines = ["| goal | videos meeting it |", "|---|---|"]
    for setting, key, test, wording in GOALS:
        rows = same_rows if setting == "same" else cross_rows
        values = _values(rows, key)
        if not values:
            continue
        met = sum(bool(test(value)) for value in values)
        shown = " (" + " ".join(f"{value:.2f}" for value in values) + ")" if setting == "same" else ""
        title = "same identity" if setting == "same" else "unseen portraits"
        lines.append(f"| {title}: {wording} | {met} of {len(values)}{shown} |")
    return lines


def summary(real_rows: list[dict], same_rows: list[dict], cross_rows: list[dict]) -> str:
    lines = ["| measurement | real clips | same identity (pose still) | unseen portraits (generated pose) |"]
    lines.append("|---|---|---|---|")
    for key, title in (
        ("mouth_r", "mouth-opening r vs the real video"),
        ("mouth_amplitude_ratio", "amplitude ratio vs the real video"),
        ("landmark_distance", "LMD (px, 256² crop)"),
        ("mouth_open_std", "mouth-opening std"),
        ("lip_sync_r", "lip-sync r vs speech envelope"),
        ("head_motion", "head motion"),
        ("frames_without_face", "frames without a face"),
    ):
        cells = [_stat(rows, key) for rows in (real_rows, same_rows, cross_rows)]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    videos = f"{len(real_rows)} real clips, {len(same_rows)} same-identity and {len(cross_rows)} unseen-portrait videos"
    return "\n".join(lines) + f"\n\n{videos}\n\n" + "\n".join(goal_lines(same_rows, cross_rows)) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", required=True, help="what talkinghead-generate --checkpoints takes")
    parser.add_argument("--clips", nargs="*", default=[], type=Path, help="real talking-head videos")
    parser.add_argument("--portraits", nargs="*", default=[], type=Path, help="portraits the clips do not show")
    parser.add_argument("--speech", nargs="*", default=[], type=Path, help="real speech for the portraits")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of every clip and recording used")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="pose seeds per unseen portrait")
    parser.add_argument(
        "--expression-scale",
        type=float,
        help="talkinghead-generate's --expression-scale (default: the facial-motion checkpoint's, as there)",
    )
    parser.add_argument(
        "--equalize-speech",
        action="store_true",
        help="talkinghead-generate's --equalize-speech: stage 1 hears every recording with the corpus' spectrum",
    )
    parser.add_argument(
        "--pause-depth",
        type=float,
        default=GenerationParams.pause_depth_db,
        metavar="DB",
        help="talkinghead-generate's --pause-depth: attenuation of the speech's pauses stage 1 hears",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    add_common_arguments(parser)
    return parser


GENERATED_FOLDERS = ("real", "portraits", "same", "cross", "speech")
"""The subfolders of ``--out`` this tool writes; a run empties them first, so the report shows only its own videos."""
REPORTS = ("report.csv", "summary.md")


def input_problem(args: argparse.Namespace) -> str | None:
    """The first problem with the inputs as one line, or None: a missing file, a setting without the inputs it
    needs, or an input inside a folder a run empties."""
    if not (args.clips or args.portraits or args.speech):
        return "no inputs: give --clips, or --portraits with --speech"
    if not args.seconds > 0:
        return f"--seconds must be more than 0, got {args.seconds:g}"
    if args.portraits and not args.speech:
        return "--portraits needs --speech (the recordings the portraits say)"
    if args.speech and not args.portraits:
        return "--speech needs --portraits (the faces that say the recordings)"
    generated = [(args.out / folder).resolve() for folder in GENERATED_FOLDERS]
    for path in [*args.clips, *args.portraits, *args.speech]:
        if not path.is_file():
            return f"{str(path)!r}: no such file"
        if any(path.resolve().is_relative_to(folder) for folder in generated):
            return f"{str(path)!r}: inside a folder of --out this tool empties ({', '.join(GENERATED_FOLDERS)})"
    return None


def clear_outputs(out: Path) -> None:
    """Remove what an earlier run wrote into ``out`` (:data:`GENERATED_FOLDERS`, :data:`REPORTS`), nothing else."""
    for folder in GENERATED_FOLDERS:
        if (out / folder).is_dir():
            shutil.rmtree(out / folder)
    for name in REPORTS:
        (out / name).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(verbosity(args))
    problem = input_problem(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        return run(args, progress=verbosity(args) >= 0)
    except (GenerationInputError, AudioError, VideoError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def check_media(pipeline: TalkingHeadPipeline, args: argparse.Namespace) -> None:
    """Read every input and find and fit every face before anything is written, so that an unusable one (no
    speech, no face in a portrait or in a clip's frame 0) ends the run at once instead of after the videos
    before it; raises the generator's errors."""
    for clip in args.clips:
        clip_speech(clip)
        first = next(iter_video_frames(clip, fps=FPS), None)
        if first is None:
            raise VideoError(f"{str(clip)!r}: no video frames")
        pipeline.prepare(first, name=f"{clip} (frame 0)")
    for recording in args.speech:
        load_audio(recording)
    for portrait in args.portraits:
        pipeline.prepare_file(portrait)


def run(args: argparse.Namespace, progress: bool) -> int:
    """Generate, measure and report (module docstring) from inputs :func:`input_problem` accepted."""
    pipeline = TalkingHeadPipeline.load(args.checkpoints)
    check_media(pipeline, args)
    generated = functools.partial(
        GenerationParams,
        expression_scale=args.expression_scale,
        speech_spectrum_db=CORPUS_SPECTRUM_DB if args.equalize_speech else None,
        pause_depth_db=args.pause_depth,
    )
    still = generated(pose="still")
    clear_outputs(args.out)
    for folder, inputs in (("same", args.clips), ("cross", args.portraits)):
        if inputs:
            (args.out / folder).mkdir(parents=True, exist_ok=True)
    for clip in args.clips:
        real, portrait = cut_clip(clip, args.seconds, args.out)
        pipeline.generate(portrait, real, args.out / "same" / real.name, still, progress)
    speech = [cut_speech(path, args.seconds, args.out) for path in args.speech]
    for portrait in args.portraits:
        for recording in speech:
            for seed in args.seeds:
                out = args.out / "cross" / f"{portrait.stem}__{recording.stem}_seed{seed}.mp4"
                pipeline.generate(portrait, recording, out, generated(seed=seed), progress)
    networks = Networks()
    real_rows = evaluate(collect_jobs([str(args.out / "real")]), networks, progress)[0] if args.clips else []
    same_rows = (
        evaluate(collect_jobs([str(args.out / "same")], str(args.out / "real")), networks, progress)[0]
        if args.clips
        else []
    )
    cross_rows = evaluate(collect_jobs([str(args.out / "cross")]), networks, progress)[0] if speech else []
    rows = [row | {"setting": "real"} for row in real_rows] + same_rows + cross_rows
    write_text_atomic(args.out / "report.csv", csv_text(rows))
    text = summary(
        real_rows, [r for r in same_rows if r["setting"] == SAME], [r for r in cross_rows if r["setting"] == CROSS]
    )
    write_text_atomic(args.out / "summary.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
