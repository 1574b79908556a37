"""``talkinghead-generate``: one portrait + one speech recording → a lip-synced talking-head mp4.

Bad input (missing or unreadable file, no face, too small a face, empty/silent/corrupt audio, unsupported
output container, unwritable output, missing checkpoints, a folder or hub id that is not an export) ends with one
line on stderr naming the problem and exit code 2; no output file is left behind.
"""

import argparse
import sys

from talkinghead.audio.io import AudioError, load_audio
from talkinghead.audio.level import CORPUS_LEVEL_DB
from talkinghead.audio.spectrum import CORPUS_SPECTRUM_DB
from talkinghead.cli_conventions import add_common_arguments, configure_logging, device_problem, verbosity
from talkinghead.conventions import FPS
from talkinghead.media import VideoError
from talkinghead.models.mesh_to_video import native_bfloat16
from talkinghead.pipeline.inputs import GenerationInputError
from talkinghead.pipeline.pipeline import GenerationParams, TalkingHeadPipeline, check_output_path
from talkinghead.pipeline.streaming import stream_to_mp4

DEFAULT_CHECKPOINTS = "outputs/demo/checkpoints"
FLAGS = {
    "temperature": "--temperature",
    "top_k": "--top-k",
    "expression_scale": "--expression-scale",
    "speech_level_db": "--speech-level",
    "pause_depth_db": "--pause-depth",
    "batch_size": "--batch-size",
    "stream_batch": "--stream-batch",
}
"""The flag of each :class:`GenerationParams` field that :meth:`GenerationParams.check` may name."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each flag's default appended to its help, unless None (its help says what leaving it out means)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="talkinghead-generate",
        description="Make a talking-head video of PORTRAIT speaking SPEECH (VividTalk, end to end).",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--image",
        required=True,
        help="portrait photo (any common format, grayscale/RGBA/16-bit/CMYK "
        "converted); the largest face is used unless --face-index says otherwise",
    )
    p.add_argument(
        "--audio", required=True, help="speech recording (wav/flac/mp3/m4a/…, any rate; the audio of a video works too)"
    )
    p.add_argument("--out", required=True, help="output .mp4 (H.264, 25 fps, speech as AAC), written atomically")
    p.add_argument(
        "--checkpoints",
        default=DEFAULT_CHECKPOINTS,
        help="folder with facial_motion.ckpt, pose_mapper.ckpt and motion_vae.ckpt (what `make demo` trains), "
        "or an export of tools/export_weights.py: its folder or Hugging Face Hub id (the local hub cache first)",
    )
    p.add_argument("--facial-motion", help="facial_motion checkpoint, overrides the folder's")
    p.add_argument("--pose-mapper", help="pose_mapper checkpoint, overrides the folder's")
    p.add_argument("--motion-vae", help="motion_vae checkpoint, overrides the folder's")
    p.add_argument(
        "--pose",
        default="generated",
        help="head pose: 'generated' (sampled by the pose mapper), "
        "'still' (the portrait's pose), or a file: .npy/.csv of (T, 6) poses (pitch, yaw, roll in "
        "radians, tx, ty, tz in cm) or a video whose head motion is copied (tracked and fitted as "
        "talkinghead-data preprocess does)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the head-pose sampling (same seed, same video)")
    p.add_argument(
        "--keep-pose-offset",
        action="store_true",
        help="with --pose generated: play the sampled trajectory as it is, its offset from the portrait's pose "
        "included (the paper's output; --stream always does), instead of shifting it so that its mean over the "
        "video is the portrait's pose",
    )
    p.add_argument(
        "--temperature", type=float, default=1.0, help="pose sampling temperature, 0 or more (0 = nearest code)"
    )
    p.add_argument(
        "--top-k",
        type=int,
        default=0,
        help="pose sampling over the k nearest codes (0 = all codes, the calibrated distribution)",
    )
    p.add_argument(
        "--expression-scale",
        type=float,
        default=None,
        help="scale of the predicted expression (blendshapes and lip offsets), 0 or more; 1 = as predicted "
        "(default: the facial-motion checkpoint's calibration, its config's expression_scale)",
    )
    p.add_argument(
        "--speech-level",
        type=float,
        metavar="DBFS",
        help=f"active-speech level the motion networks hear, set by a causal gain control (default "
        f"{CORPUS_LEVEL_DB:g}, the embedded corpus' active-speech level); the video keeps the speech as given",
    )
    p.add_argument(
        "--keep-speech-level",
        action="store_true",
        help="feed the recording's own gain to stage 1: no gain control, so no pause attenuation either "
        "(not with --speech-level or --pause-depth)",
    )
    p.add_argument(
        "--pause-depth",
        type=float,
        metavar="DB",
        help="turn the speech's pauses (frames 10 dB or more below its active level: the recording's noise) down by "
        "DB for the motion networks, a step of the gain control, so the mouth does not follow the noise (default "
        f"{GenerationParams.pause_depth_db:g}; 0 = as loud as the gain leaves them); the video keeps the speech as "
        "given",
    )
    p.add_argument(
        "--equalize-speech",
        action="store_true",
        help="bring the long-term spectrum the motion networks hear to the embedded corpus' (a causal octave-band "
        "equaliser): the mouth opens wider on recordings darker than espeak-ng's voices, and follows a noisy "
        "recording's pauses more; the video keeps the speech as given",
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the networks run")
    p.add_argument("--batch-size", type=int, default=16, help="frames per stage-2 batch (bounds memory)")
    p.add_argument(
        "--bf16",
        action="store_true",
        help="stage 2's networks in bfloat16: faster on CUDA and on CPUs with native bfloat16 (AVX-512 BF16, AMX), "
        "frames within rounding of float32",
    )
    p.add_argument(
        "--full-frame",
        action="store_true",
        help="paste the generated face back into the whole portrait (soft-edged) instead of writing the 256x256 crop",
    )
    p.add_argument("--face-index", type=int, help="which face when there are several (0 = largest)")
    p.add_argument("--side-by-side", action="store_true", help="also write OUT_side_by_side.mp4: mesh render | result")
    add_common_arguments(p)
    p.add_argument(
        "--stream",
        action="store_true",
        help="generate as if the speech were live: read it in 40-ms chunks, write each frame as soon as its audio "
        "has arrived into a fragmented mp4 that plays while it is written (OUT itself, deleted on error); prints "
        "the first frame's delay and the real-time factor",
    )
    p.add_argument("--realtime", action="store_true", help="with --stream: feed the chunks at wall-clock pace")
    p.add_argument(
        "--stream-batch",
        type=int,
        metavar="N",
        help="with --stream: render the ready frames once N are ready (the first at once); each frame may wait "
        "N − 1 frames longer, stage 2 costs less per frame; at most --batch-size (default "
        f"{GenerationParams.stream_batch}, or --batch-size if smaller; 1 = lowest latency)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(verbosity(args))
    try:
        params = generation_params(args)
        if problem := device_problem(args.device):
            raise GenerationInputError(problem)
        if args.bf16 and args.device == "cpu" and verbosity(args) >= 0 and not native_bfloat16():
            print(
                "talkinghead-generate: note: --bf16: this CPU emulates bfloat16 (no AVX-512 BF16 or AMX), "
                "so stage 2 runs slower than in float32",
                file=sys.stderr,
            )
        pipeline = TalkingHeadPipeline.load(
            args.checkpoints,
            facial_motion=args.facial_motion,
            pose_mapper=args.pose_mapper,
            motion_vae=args.motion_vae,
            device=args.device,
        )
        if args.stream:
            return generate_stream(pipeline, args, params)
        result = pipeline.generate(args.image, args.audio, args.out, params, progress=verbosity(args) >= 0)
    except (GenerationInputError, AudioError, VideoError) as error:
        print(f"talkinghead-generate: error: {error}", file=sys.stderr)
        return 2
    for note in result.notes if verbosity(args) >= 0 else ():
        print(f"talkinghead-generate: note: {note}", file=sys.stderr)
    extra = f" and {result.side_by_side}" if result.side_by_side else ""
    print(f"wrote {result.video}{extra}: {result.num_frames} frames at {FPS} fps")
    return 0


def generation_params(args: argparse.Namespace) -> GenerationParams:
    """The flags → checked :class:`GenerationParams` (the defaults for flags not given); a flag mistake
    (a value outside its domain, a combination that would drop a flag) is a :class:`GenerationInputError`."""
    if args.realtime and not args.stream:
        raise GenerationInputError("--realtime needs --stream")
    if args.stream_batch is not None and not args.stream:
        raise GenerationInputError("--stream-batch needs --stream")
    if args.keep_speech_level:
        dropped = [flag for flag in ("speech_level", "pause_depth") if getattr(args, flag) is not None]
        if dropped:
            flags = " and ".join(f"--{flag.replace('_', '-')}" for flag in dropped)
            raise GenerationInputError(
                f"{flags} cannot be combined with --keep-speech-level, which turns the gain control "
                "(and with it the pause attenuation) off"
            )
    if args.top_k < 0:
        raise GenerationInputError(f"--top-k must be 0 (all codes) or more, got {args.top_k}")
    level = CORPUS_LEVEL_DB if args.speech_level is None else args.speech_level
    stream_batch = args.stream_batch
    if stream_batch is None:
        stream_batch = min(GenerationParams.stream_batch, args.batch_size)
    params = GenerationParams(
        pose=args.pose,
        seed=args.seed,
        centre_pose=not args.keep_pose_offset,
        temperature=args.temperature,
        top_k=args.top_k or None,
        expression_scale=args.expression_scale,
        speech_level_db=None if args.keep_speech_level else level,
        speech_spectrum_db=CORPUS_SPECTRUM_DB if args.equalize_speech else None,
        pause_depth_db=GenerationParams.pause_depth_db if args.pause_depth is None else args.pause_depth,
        batch_size=args.batch_size,
        bf16=args.bf16,
        stream_batch=stream_batch,
        full_frame=args.full_frame,
        face_index=args.face_index,
        side_by_side=args.side_by_side,
    )
    params.check(FLAGS, stream=args.stream)
    return params


def generate_stream(pipeline: TalkingHeadPipeline, args: argparse.Namespace, params: GenerationParams) -> int:
    """``--stream``: the speech file fed in 40-ms chunks (:func:`~talkinghead.pipeline.streaming.stream_to_mp4`)."""
    if args.side_by_side:
        raise GenerationInputError("--side-by-side is not available with --stream")
    out = check_output_path(args.out)
    speech = load_audio(args.audio)
    session = pipeline.open_stream(args.image, params)
    report = stream_to_mp4(session, speech, out, realtime=args.realtime)
    for note in session.prepared.notes if verbosity(args) >= 0 else ():
        print(f"talkinghead-generate: note: {note}", file=sys.stderr)
    print(f"wrote {out}: {report.num_frames} frames at {FPS} fps (streamed)")
    if verbosity(args) >= 0:
        print(report.line(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
