"""ForeachEMAWeightAveraging: Lightning's EMA of the weights, the same average bit for bit, in multi-tensor kernels."""

import copy

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_avg_fn

from talkinghead.lightning.weight_averaging import ForeachEMAWeightAveraging, ema_multi_avg_fn


class Regressor(pl.LightningModule):
    """A linear layer, a float and an integer buffer (both averaged, as ``use_buffers`` averages them)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(5, 3)
        self.register_buffer("scale", torch.ones(3))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def training_step(self, batch, _index):
        inputs, targets = batch
        self.scale.mul_(1.01)
        self.steps += 7
        return ((self.layer(inputs) * self.scale - targets) ** 2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        inputs = torch.randn(48, 5, generator=torch.Generator().manual_seed(1))
        return torch.utils.data.DataLoader(list(zip(inputs, inputs[:, :3].sin(), strict=True)), batch_size=4)


def test_the_multi_tensor_update_rounds_as_the_per_tensor_one():
    """Twenty updates of an average of float and integer tensors that keep changing: every averaged tensor is the
    per-tensor update's, bit for bit, and has moved away from both the first and the last weights."""
    torch.manual_seed(0)
    model = Regressor()
    per_tensor = AveragedModel(model, use_buffers=True, avg_fn=get_ema_avg_fn(0.9))
    multi_tensor = AveragedModel(model, use_buffers=True, multi_avg_fn=ema_multi_avg_fn(0.9))
    first = copy.deepcopy(model.state_dict())
    for _ in range(20):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter))
            model.scale.mul_(1.1)
            model.steps += 13
        per_tensor.update_parameters(model)
        multi_tensor.update_parameters(model)
    expected, averaged = per_tensor.module.state_dict(), multi_tensor.module.state_dict()
    for name, value in expected.items():
        assert torch.equal(averaged[name], value), name
        assert not torch.equal(value, first[name]) and not torch.equal(value, model.state_dict()[name]), name


def test_a_fit_with_the_callback_ends_with_lightnings_average_bit_for_bit():
    """The same 12 steps with Lightning's callback and with this one (decay 0.8, updates from step 3, every second
    step): the averaged weights each fit leaves in the module are equal, and differ from the trained ones."""

    def fit(callback) -> dict[str, torch.Tensor]:
        pl.seed_everything(0)
        module = Regressor()
        trainer = pl.Trainer(
            max_steps=12,
            callbacks=[callback],
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(module)
        return module.state_dict()

    settings = {"decay": 0.8, "update_starting_at_step": 3, "update_every_n_steps": 2}
    lightning_average = fit(EMAWeightAveraging(**settings))
    foreach_average = fit(ForeachEMAWeightAveraging(**settings))
    trained = fit(EMAWeightAveraging(decay=0.0))  # an "average" of the last weights alone
    for name, value in lightning_average.items():
        assert torch.equal(foreach_average[name], value), name
    assert not torch.equal(lightning_average["layer.weight"], trained["layer.weight"])
