"""What every command line of the project shares: ``--version``, ``-v/--verbose``, ``-q/--quiet`` and one log format.

:func:`device_problem` is the one check of ``--device`` the inference command lines share.

Verbosity is a number: ``-1`` with ``-q`` (errors only: no warnings, no progress bars), ``0`` by default (warnings
and errors), ``1`` with ``-v`` (also the INFO lines ``talkinghead`` logs, e.g. each shard written) and ``2`` with
``-vv`` (also ``talkinghead``'s DEBUG lines and other libraries' INFO lines). Python warnings (``warnings.warn``)
go through the same handler at WARNING, so ``-q`` hides them too. The version is the installed distribution's,
i.e. ``setup.cfg``'s ``version``.
"""

import argparse
import logging
import sys
from importlib.metadata import PackageNotFoundError, version

PACKAGE = "talkinghead"
VERBOSE_FLAGS = ("-v", "--verbose")
QUIET_FLAGS = ("-q", "--quiet")
SUBCOMMAND_PREFIX = "subcommand_"  # namespace names of the flags given after a subcommand
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%H:%M:%S"
PACKAGE_LEVELS = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}


class _Handler(logging.StreamHandler):
    """The handler :func:`configure_logging` installs (a second call replaces it instead of adding one). Like
    :data:`logging.lastResort` it writes to whatever ``sys.stderr`` is when a record comes, so it follows a
    redirection made after set-up (and never writes to a stream closed since)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):
        return sys.stderr


def package_version() -> str:
    """The installed ``talkinghead`` version; ``0+unknown`` for a source tree that was never installed."""
    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return "0+unknown"


def device_problem(device: str) -> str | None:
    """The one-line problem with ``--device`` on this machine (``cuda`` without CUDA), or None. Torch is imported
    only for ``cuda``, so the command lines' ``--help`` stays fast."""
    if device != "cuda":
        return None
    import torch

    return None if torch.cuda.is_available() else "--device cuda: CUDA is not available on this machine"


def add_common_arguments(parser: argparse.ArgumentParser, subcommand: bool = False) -> None:
    """Add ``--version``, ``-v/--verbose`` (repeatable) and ``-q/--quiet`` (exclusive) to ``parser``.

    The two verbosity flags leave no default in the namespace, so a program may add them to its top-level parser
    and, with ``subcommand=True`` (their own names in the namespace), to each subcommand's: ``prog -v run``,
    ``prog run -v`` and ``prog -v run -v`` (= ``-vv``) all work. Parse with :func:`parse_args`, which rejects
    ``-q`` on one side with ``-v`` on the other, and read them with :func:`verbosity`.
    """
    prefix = SUBCOMMAND_PREFIX if subcommand else ""
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        *VERBOSE_FLAGS,
        action="count",
        dest=f"{prefix}verbose",
        default=argparse.SUPPRESS,
        help="also show informational log lines (-vv: debug lines too)",
    )
    group.add_argument(
        *QUIET_FLAGS,
        action="store_true",
        dest=f"{prefix}quiet",
        default=argparse.SUPPRESS,
        help="errors only: no warnings, no progress bar",
    )


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args(argv)``; ``-q`` on one side of the subcommand with ``-v`` on the other exits with the
    error argparse gives the pair on one side."""
    args = parser.parse_args(argv)
    quiet_then_verbose = getattr(args, "quiet", False) and getattr(args, f"{SUBCOMMAND_PREFIX}verbose", 0)
    verbose_then_quiet = getattr(args, "verbose", 0) and getattr(args, f"{SUBCOMMAND_PREFIX}quiet", False)
    if quiet_then_verbose or verbose_then_quiet:
        later, earlier = (VERBOSE_FLAGS, QUIET_FLAGS) if quiet_then_verbose else (QUIET_FLAGS, VERBOSE_FLAGS)
        parser.error(f"argument {'/'.join(later)}: not allowed with argument {'/'.join(earlier)}")
    return args


def verbosity(args: argparse.Namespace) -> int:
    """``-1`` with ``--quiet``, otherwise the number of ``--verbose`` flags (before and after a subcommand)."""
    if getattr(args, "quiet", False) or getattr(args, f"{SUBCOMMAND_PREFIX}quiet", False):
        return -1
    return getattr(args, "verbose", 0) + getattr(args, f"{SUBCOMMAND_PREFIX}verbose", 0)


def configure_logging(verbosity: int) -> None:
    """Log to stderr in :data:`LOG_FORMAT` at the level ``verbosity`` asks for (module docstring).

    ``talkinghead`` loggers get :data:`PACKAGE_LEVELS`; everything else stays at WARNING (ERROR with ``-q``,
    INFO from ``-vv`` on). Calling it again replaces the handler and the levels.
    """
    verbosity = max(-1, min(verbosity, 2))
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(handler)
    others = {-1: logging.ERROR, 2: logging.INFO}.get(verbosity, logging.WARNING)
    handler = _Handler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT, DATE_FORMAT))
    # Libraries that set their own logger's level (Lightning sets INFO) would otherwise pass the root's level.
    handler.addFilter(lambda record: record.name.split(".")[0] == PACKAGE or record.levelno >= others)
    root.addHandler(handler)
    root.setLevel(others)
    logging.getLogger(PACKAGE).setLevel(PACKAGE_LEVELS[verbosity])
    logging.captureWarnings(True)
