"""``talkinghead-demo``: serve the web page of :mod:`talkinghead.pipeline.web_page` (Gradio, the ``demo`` extra).

This module is the command line only: it checks the arguments, that Gradio is installed (else one line naming the
extra, exit code 2) and that the networks load, before the page module — and Gradio with it — is imported.
"""

import argparse
import importlib.util
import sys

from talkinghead.cli_conventions import add_common_arguments, configure_logging, device_problem, verbosity
from talkinghead.pipeline.cli import DEFAULT_CHECKPOINTS
from talkinghead.pipeline.demo_examples import ExampleInputsError, example_inputs
from talkinghead.pipeline.inputs import GenerationInputError
from talkinghead.pipeline.pipeline import TalkingHeadPipeline

DEFAULT_EXAMPLES = "outputs/demo"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="talkinghead-demo",
        description="Serve a web page (and the HTTP API /generate) that makes talking-head videos.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--checkpoints",
        default=DEFAULT_CHECKPOINTS,
        help="folder with facial_motion.ckpt, pose_mapper.ckpt and motion_vae.ckpt (what `make demo` trains), "
        "an export of tools/export_weights.py or its Hugging Face Hub id",
    )
    p.add_argument(
        "--examples",
        default=DEFAULT_EXAMPLES,
        help="folder with the example portrait.png and speech.wav; written into ~/.cache/talkinghead if absent",
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the networks run")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on")
    p.add_argument("--share", action="store_true", help="also make a temporary public link through Gradio's servers")
    add_common_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(verbosity(args))
    if importlib.util.find_spec("gradio") is None:
        print("talkinghead-demo: error: Gradio is not installed: pip install 'talkinghead[demo]'", file=sys.stderr)
        return 2
    try:
        if problem := device_problem(args.device):
            raise GenerationInputError(problem)
        pipeline = TalkingHeadPipeline.load(args.checkpoints, device=args.device)
    except GenerationInputError as error:
        print(f"talkinghead-demo: error: {error}", file=sys.stderr)
        return 2
    try:
        examples = example_inputs(args.examples)
    except ExampleInputsError as error:
        print(f"talkinghead-demo: note: no examples: {error}", file=sys.stderr)
        examples = None
    from talkinghead.pipeline.web_page import build_demo

    try:
        build_demo(pipeline, examples).launch(server_name=args.host, server_port=args.port, share=args.share)
    except OSError as error:
        print(f"talkinghead-demo: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
