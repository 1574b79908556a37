"""``talkinghead fit|validate|test|predict --config lightning_configs/<module>.yaml``: LightningCLI.

The model is chosen by the config's ``model.class_path`` (any LightningModule of :mod:`talkinghead.lightning`);
every module shares :class:`~talkinghead.data.datamodule.TalkingHeadDataModule` (``--data.root DIR`` points it at
a shard folder). Missing or corrupt data, or a split without a clip long enough for the window, ends in one
line and exit 2.

What every config shares is set here once instead of in each file; a config or a flag that sets it wins:

* ``trainer.default_root_dir``: ``outputs/runs/<config>``, ``<config>`` the stem of the first ``--config`` file;
* ``trainer.logger``: :class:`~talkinghead.lightning.loggers.WandbLogger` (offline unless logged in) named
  ``<Module>-<config>`` and saving under the root dir (``lightning_configs/loggers/csv.yaml`` switches to CSV);
* ``trainer.callbacks``: :class:`~talkinghead.lightning.media.MediaLogger`, a
  :class:`~talkinghead.lightning.checkpointing.BestAndLastCheckpoint` keeping the best checkpoint on the module's
  own validation metric (``MONITOR`` of the module class) and ``last.ckpt``, the state at the newest validation,
  and
  :class:`~talkinghead.lightning.rng.RNGState` (the global RNG states in every checkpoint); a config that lists
  callbacks of its own (e.g. ``ForeachEMAWeightAveraging``) gets these added unless it lists them; ``fit`` with its
  standard output not a terminal (a log file, a pipe, a Slurm job) also gets
  :class:`~talkinghead.lightning.progress.LineProgress` (a line of progress every 30 s) instead of Lightning's
  live bar, which shows nothing there until the end, unless a progress bar is listed or turned off.

A ``ModelCheckpoint`` that saves by step or time (``every_n_train_steps``, ``train_time_interval``) gets no
validation metric to monitor: Lightning would hold such a save back until the next validation. With
``save_last`` it writes the run's only ``last.ckpt`` (the others' ``save_last`` is turned off, so Lightning
writes no ``last-v1.ckpt`` beside it; the best checkpoint on the validation metric is kept as before), at the step
it saved, e.g. for resuming after a preemption, which continues the epoch with the same batches and random draws as
an uninterrupted run::

    talkinghead fit --config CONFIG --trainer.callbacks+=ModelCheckpoint \
        --trainer.callbacks.every_n_train_steps 500 --trainer.callbacks.save_last true
    talkinghead fit --config CONFIG --ckpt_path RUN/checkpoints/last.ckpt

(a fit ended by ``max_steps`` mid-epoch writes a ``last.ckpt`` that Lightning treats as the end of that epoch).

``--version`` is an argument of the parser; ``-v/--verbose`` and ``-q/--quiet``
(:mod:`talkinghead.cli_conventions`) are taken out of the command line before LightningCLI parses it, wherever
they stand, so they never reach a saved ``config.yaml``. ``-q`` also turns the progress bar off and lowers
Lightning's own loggers (device summary, model summary, tips) to errors only.
"""

import importlib
import inspect
import logging
import sys
from pathlib import Path

import lightning
from jsonargparse import Namespace, dict_to_namespace
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningCLI

from talkinghead.cli_conventions import QUIET_FLAGS, VERBOSE_FLAGS, configure_logging, package_version
from talkinghead.data.datamodule import EmptySplitError, TalkingHeadDataModule
from talkinghead.data.shards import CorruptShardError
from talkinghead.lightning.checkpointing import newest_last_checkpoint
from talkinghead.lightning.stage import ConfigurationError
from talkinghead.models.checkpoints import UnreadableCheckpointError, read_checkpoint

log = logging.getLogger(__name__)
USER_ERRORS = (ConfigurationError, CorruptShardError, EmptySplitError, FileNotFoundError, UnreadableCheckpointError)
RUNS = Path("outputs/runs")
WANDB_LOGGER = "talkinghead.lightning.loggers.WandbLogger"
CHECKPOINT = "talkinghead.lightning.checkpointing.BestAndLastCheckpoint"  # last.ckpt follows the run
LIGHTNING_CHECKPOINT = "lightning.pytorch.callbacks.ModelCheckpoint"
LINE_PROGRESS = "talkinghead.lightning.progress.LineProgress"
SHARED_CALLBACKS = (
    {"class_path": "talkinghead.lightning.media.MediaLogger", "init_args": {"every_n_validations": 1}},
    {"class_path": CHECKPOINT, "init_args": {"save_last": True, "auto_insert_metric_name": False}},
    {"class_path": "talkinghead.lightning.rng.RNGState"},
)
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")
VERBOSITY_EPILOG = (
    "-v/--verbose (-vv) shows informational (debug) log lines and -q/--quiet shows errors only, without progress "
    "bar; both may stand anywhere on the command line."
)


def _user_error(error: BaseException) -> BaseException | None:
    """The missing-file, corrupt-shard or empty-split error behind ``error`` (jsonargparse wraps constructor errors)."""
    while error is not None:
        if isinstance(error, USER_ERRORS):
            return error
        error = error.__cause__ or error.__context__
    return None


def _saves_by_step(callback: Namespace) -> bool:
    """Whether a checkpoint callback's configuration saves by step or time rather than on validation."""
    init_args = callback.get("init_args") or {}
    return bool(init_args.get("every_n_train_steps") or init_args.get("train_time_interval"))


def split_verbosity(argv: list[str]) -> tuple[int, list[str]]:
    """(verbosity of :mod:`talkinghead.cli_conventions`, the arguments for LightningCLI): ``-v``, ``-vv``,
    ``--verbose``, ``-q``, ``--quiet`` taken out of ``argv``; with ``-q`` a subcommand's progress bar is turned off
    (last, so that it wins over a config file)."""
    verbose = sum(arg in VERBOSE_FLAGS for arg in argv) + 2 * argv.count("-vv")
    quiet = any(arg in QUIET_FLAGS for arg in argv)
    if quiet and verbose:
        raise ValueError("-q/--quiet and -v/--verbose exclude each other")
    rest = [arg for arg in argv if arg not in (*VERBOSE_FLAGS, *QUIET_FLAGS, "-vv")]
    if quiet and any(arg in LightningCLI.subcommands() for arg in rest):
        rest.append("--trainer.enable_progress_bar=false")
    return (-1 if quiet else verbose), rest


def import_class(class_path: str) -> type:
    """The class named by a ``package.module.Class`` path."""
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _checkpoint_alias(class_path: str) -> str:
    """Lightning's ``ModelCheckpoint`` counts as :data:`CHECKPOINT`: a config that lists either gets no other."""
    return CHECKPOINT if class_path == LIGHTNING_CHECKPOINT else class_path


class TalkingHeadCLI(LightningCLI):
    """LightningCLI with the shared trainer blocks and the ``--version`` of the module docstring."""

    def init_parser(self, **kwargs):
        parser = super().init_parser(**kwargs)
        parser.add_argument("--version", action="version", version=f"talkinghead {package_version()}")
        parser.epilog = VERBOSITY_EPILOG
        return parser

    def add_arguments_to_parser(self, parser) -> None:
        parser.set_defaults({"trainer.logger": {"class_path": WANDB_LOGGER, "init_args": {"project": "talkinghead"}}})

    @staticmethod
    def _stem(config: Namespace) -> str:
        """The first ``--config`` file's stem, else the model class's name."""
        files = config.get("config") or []
        return Path(str(files[0])).stem if files else import_class(config.model.class_path).__name__

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        model_class = import_class(config.model.class_path)
        stem = self._stem(config)
        trainer = config.trainer
        if trainer.default_root_dir is None:
            trainer.default_root_dir = str(RUNS / stem)
        logger = trainer.logger
        if isinstance(logger, Namespace) and logger.class_path == WANDB_LOGGER:
            if logger.init_args.get("name") is None:
                logger.init_args.name = f"{model_class.__name__}-{stem}"
            if logger.init_args.get("save_dir") in (None, "."):
                logger.init_args.save_dir = trainer.default_root_dir
        listed = {
            _checkpoint_alias(c.class_path)
            for c in trainer.callbacks or []
            if isinstance(c, Namespace) and not _saves_by_step(c)
        }
        checkpoints = trainer.enable_checkpointing is not False
        wanted = [c for c in SHARED_CALLBACKS if c["class_path"] != CHECKPOINT or checkpoints]
        missing = [dict_to_namespace(callback) for callback in wanted if callback["class_path"] not in listed]
        trainer.callbacks = [*(trainer.callbacks or []), *missing]
        if self.subcommand == "fit" and self._wants_line_progress(trainer):
            trainer.callbacks.append(dict_to_namespace({"class_path": LINE_PROGRESS}))
        monitor, mode = getattr(model_class, "MONITOR", (None, "min"))
        checkpoints = [
            c for c in trainer.callbacks if isinstance(c, Namespace) and _checkpoint_alias(c.class_path) == CHECKPOINT
        ]
        by_step = [c for c in checkpoints if _saves_by_step(c)]
        for callback in checkpoints:
            if callback in by_step:
                continue
            if any(c.init_args.get("save_last") for c in by_step):
                callback.init_args.save_last = False  # one last.ckpt: the one a resumed run continues from
            if monitor is not None and callback.init_args.get("monitor") is None:
                callback.init_args.monitor, callback.init_args.mode = monitor, mode
                if callback.init_args.get("filename") is None:
                    callback.init_args.filename = f"{{epoch}}-{{{monitor}:.3f}}"

    def _parse_ckpt_path(self) -> None:
        """``--ckpt_path last`` is the newest ``last.ckpt`` under the run's root directory (Lightning looks only in
        this run's new logger version, finds none and starts over). LightningCLI rebuilds the model from the
        checkpoint's hyper-parameters, which replace the model arguments given (the network must match its weights);
        the module's ``EVALUATION_ARGS`` (e.g. the pose mapper's sampling temperature) keep the values given where
        they differ from the constructor's defaults."""
        subcommand = self.config.get("subcommand")
        if subcommand and self.config[subcommand].get("ckpt_path") == "last":
            config = self.config[subcommand]
            config.ckpt_path = str(newest_last_checkpoint(config.trainer.default_root_dir or RUNS / self._stem(config)))
            log.info("resuming from %s", config.ckpt_path)
        model = self.config[subcommand].get("model") if subcommand else None
        given = model.clone() if isinstance(model, Namespace) and model.get("init_args") is not None else None
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if path and Path(path).is_file():
            try:
                read_checkpoint(path)  # the file read once more, so that one that is not a checkpoint is one line
            except UnreadableCheckpointError as error:
                raise UnreadableCheckpointError(f"--ckpt_path {error}") from None
        super()._parse_ckpt_path()
        model = self.config[subcommand].get("model") if subcommand else None
        if given is None or not isinstance(model, Namespace) or model.get("class_path") != given.class_path:
            return
        model_class = import_class(model.class_path)
        defaults = inspect.signature(model_class.__init__).parameters
        for name in getattr(model_class, "EVALUATION_ARGS", ()):
            if name in given.init_args and given.init_args[name] != defaults[name].default:
                model.init_args[name] = given.init_args[name]

    @staticmethod
    def _wants_line_progress(trainer: Namespace) -> bool:
        """Whether a fit gets :class:`~talkinghead.lightning.progress.LineProgress`: output not a terminal, the
        progress bar on and no progress bar among the callbacks."""
        if sys.stdout.isatty() or trainer.enable_progress_bar is False:
            return False
        listed = [c.class_path for c in trainer.callbacks if isinstance(c, Namespace)]
        objects = [c for c in trainer.callbacks if not isinstance(c, Namespace)]
        return not any(issubclass(import_class(path), ProgressBar) for path in listed) and not any(
            isinstance(c, ProgressBar) for c in objects
        )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default: the command line, which then loses the verbosity flags)."""
    try:
        level, args = split_verbosity(sys.argv[1:] if argv is None else list(argv))
    except ValueError as error:
        print(f"talkinghead: error: {error}", file=sys.stderr)
        return 2
    configure_logging(level)
    if level < 0:
        for name in LIGHTNING_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
    if argv is None:
        sys.argv[1:], args = args, None  # LightningCLI warns when given both a command line and args
    try:
        TalkingHeadCLI(
            lightning.LightningModule,
            TalkingHeadDataModule,
            subclass_mode_model=True,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,  # each module builds its own (AdamW, warm-up; stage 2 two optimizers)
            args=args,
        )
    except (*USER_ERRORS, ValueError) as error:
        cause = _user_error(error)
        if cause is None:
            raise
        print(f"talkinghead: error: {cause}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
