"""``talkinghead fit|validate|test|predict --config lightning_configs/<module>.yaml``: LightningCLI.

The model is chosen by the config's ``model.class_path`` (any LightningModule of
:mod:`talkinghead.lightning`); every module shares :class:`~talkinghead.data.datamodule.TalkingHeadDataModule`
(``--data.root DIR`` points it at a shard folder). Missing or corrupt data ends in one line and exit 2.
"""

import sys

import lightning
from lightning.pytorch.cli import LightningCLI

from talkinghead.data.datamodule import TalkingHeadDataModule
from talkinghead.data.shards import CorruptShardError

USER_ERRORS = (CorruptShardError, FileNotFoundError)


def _user_error(error: BaseException) -> BaseException | None:
    """The missing-file or corrupt-shard error behind ``error`` (jsonargparse wraps constructor errors)."""
    while error is not None:
        if isinstance(error, USER_ERRORS):
            return error
        error = error.__cause__ or error.__context__
    return None


def main(argv: list[str] | None = None) -> int:
    try:
        LightningCLI(
            lightning.LightningModule,
            TalkingHeadDataModule,
            subclass_mode_model=True,
            save_config_kwargs={"overwrite": True},
            args=argv,
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
