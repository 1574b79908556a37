"""``python tools/demo_inputs.py OUT_DIR [--text TEXT]``: the portrait and speech ``make demo`` animates.

See :mod:`talkinghead.pipeline.demo_examples`: scikit-image's ``astronaut`` photo and an espeak-ng sentence
the embedded corpus never says. A ``--text`` with nothing to say (nothing is written then) or an ``OUT_DIR`` it
cannot write is one line on stderr and exit code 2.
"""

import argparse
import sys

from talkinghead.cli_conventions import add_common_arguments, configure_logging, verbosity
from talkinghead.pipeline.demo_examples import DEMO_SENTENCE, write_demo_inputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the demo portrait and speech.")
    parser.add_argument("out_dir")
    parser.add_argument("--text", default=DEMO_SENTENCE, help="what the portrait says")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(verbosity(args))
    try:
        portrait, speech = write_demo_inputs(args.out_dir, args.text)
    except ValueError as error:
        print(f"error: --text: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot write to {args.out_dir}: {error.strerror or error}", file=sys.stderr)
        return 2
    print(f"wrote {portrait} and {speech}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
