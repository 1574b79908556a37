"""Lightning's and torch's messages that no user of these stages can act on, silenced in one place.

* torch's ``LeafSpec`` FutureWarning, which Lightning's pytree helper triggers at every fit;
* Lightning's warning that a module overrides ``on_after_batch_transfer`` beside a data module: the motion-VAE stage
  renders its inputs there on purpose (the data module has no such hook);
* Lightning's advertisement for its LitLogger cloud service, logged at every fit, test and validation (runs log to
  CSV and, on request, Weights & Biases: :mod:`talkinghead.lightning.loggers`);
* "module(s) in eval mode at the start of training" when only frozen networks are in eval mode
  (:func:`expect_frozen_modules_in_eval_mode`).
"""

import logging
import warnings

import torch
from lightning.pytorch.utilities.warnings import PossibleUserWarning

LITLOGGER_TIP = "💡 Tip: For seamless cloud logging"


class WithoutLitLoggerTip(logging.Filter):
    """Drops the LitLogger advertisement; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(LITLOGGER_TIP)


def silence_known_messages() -> None:
    """Install the filters for the first three messages of the module docstring (idempotent)."""
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
    warnings.filterwarnings("ignore", message="You have overridden `on_after_batch_transfer` in `LightningModule` but")
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, WithoutLitLoggerTip) for f in rank_zero.filters):
        rank_zero.addFilter(WithoutLitLoggerTip())


def expect_frozen_modules_in_eval_mode(module: torch.nn.Module) -> None:
    """Keep Lightning's "module(s) in eval mode at the start of training" warning for what it is meant to catch.

    A frozen earlier stage or feature extractor (the pose mapper's VQ-VAE, the VGG-19 of the perceptual loss)
    stays in eval mode on purpose, so when every module in eval mode lies inside such a network — the outermost
    eval-mode modules each hold parameters, none of them trainable — the warning is silenced for exactly that
    count. Any other module in eval mode (a dropout or a trainable layer left in eval) still raises it.
    """
    in_eval = {name: child for name, child in module.named_modules() if not child.training}
    outermost = [child for name, child in in_eval.items() if not name or name.rpartition(".")[0] not in in_eval]
    trainable = [[p.requires_grad for p in child.parameters()] for child in outermost]
    if outermost and all(flags and not any(flags) for flags in trainable):
        warnings.filterwarnings(
            "ignore",
            message=rf"Found {len(in_eval)} module\(s\) in eval mode at the start of training",
            category=PossibleUserWarning,
        )
