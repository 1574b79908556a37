"""Experiment tracking: Weights & Biases, offline unless the user is logged in.

Every training config logs through :class:`WandbLogger` (``talkinghead.lightning.WandbLogger``). With
``offline: null`` (the configs' default) the run is *online* when W&B credentials exist (``WANDB_API_KEY``,
or ``wandb login``'s entry for ``api.wandb.ai`` in ``~/.netrc``) and ``WANDB_MODE`` does not say
``offline``/``disabled``; otherwise it is stored under ``<save_dir>/wandb/offline-run-*`` and can be uploaded
later with ``wandb sync <that folder>``. Nothing touches the network in offline mode.

Users without W&B add ``--config lightning_configs/loggers/csv.yaml`` after the module's config: metrics go
to ``metrics.csv`` files instead, media to ``<log_dir>/media/``.
"""

import netrc
import os

from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger

OFFLINE_MODES = ("offline", "dryrun", "disabled")


def wandb_logged_in() -> bool:
    """True when W&B credentials are available and ``WANDB_MODE`` does not force offline."""
    if os.environ.get("WANDB_MODE", "").lower() in OFFLINE_MODES:
        return False
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


class WandbLogger(LightningWandbLogger):
    """Lightning's ``WandbLogger`` with ``offline=None`` meaning "offline unless logged in" (module docstring).

    Args:
        name: run name; the configs use ``<module>-<config>``, e.g. ``FacialMotionModule-facial_motion_tiny``.
        save_dir: where the ``wandb/`` run folders go (the configs use the run's ``outputs/runs/<config>``).
        project: W&B project.
        offline: True / False to force, None to decide by :func:`wandb_logged_in`.
        **kwargs: everything else of Lightning's ``WandbLogger`` (``log_model``, ``tags``, ``entity``, …).

    Lightning passes ``anonymous=None`` to ``wandb.init`` unless the caller asks for anonymous logging, and the
    pinned wandb warns at every run that this deprecated setting "has no effect"; a ``None`` is left out of
    ``wandb.init``'s arguments.
    """

    def __init__(
        self,
        name: str | None = None,
        save_dir: str = ".",
        project: str = "talkinghead",
        offline: bool | None = None,
        **kwargs,
    ) -> None:
        if offline is None:
            offline = not wandb_logged_in()
        os.makedirs(save_dir, exist_ok=True)
        super().__init__(name=name, save_dir=save_dir, project=project, offline=offline, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
