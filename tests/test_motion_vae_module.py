"""MotionVAEGeneratorModule (§3.3–3.4) through Lightning: GAN alternation, overfitting, checkpoints, the CLI."""

import math
from pathlib import Path

import lightning
import pytest
import torch
from torch.utils.data import DataLoader

from talkinghead.data.datamodule import TalkingHeadDataModule
from talkinghead.face import builtin_morphable_model
from talkinghead.lightning import MotionVAEGeneratorModule
from talkinghead.lightning.cli import main as cli_main
from talkinghead.models import MeshToVideo, load_network
from talkinghead.models.losses import MOUTH_DILATION, mouth_region
from talkinghead.models.mesh_to_video import FACE_KEYS
from tests.helpers import CSV_LOGGER_CONFIG, logged_metrics

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "lightning_configs" / "motion_vae_tiny.yaml"
PAPER_CONFIG = ROOT / "lightning_configs" / "motion_vae.yaml"
SMALL = {
    "render_size": 64,
    "motion_size": 32,
    "rasterizer": "torch",
    "perceptual": "gradients",
    "mesh_flow_weight": 0.1,
    "discriminator_start": 0,
    "mouth_metric": False,
    "motion": {"facial_channels": [8, 16], "latent_channels": 4, "facial_features": 8, "lip_channels": [8, 16],
               "lip_features": 8, "decoder_channels": 8, "decoder_layers": 1},
    "generator": {"channels": [8, 16], "num_residual": 1},
    "discriminator": {"scales": [0.5], "channels": 8, "num_layers": 2},
}  # fmt: skip


def _module(**overrides) -> MotionVAEGeneratorModule:
    torch.manual_seed(0)
    module = MotionVAEGeneratorModule(**{**SMALL, **overrides})
    module.setup("fit")
    return module


@pytest.fixture(scope="module")
def raw_batch(tiny_corpus):
    data = TalkingHeadDataModule(str(tiny_corpus), mode="stage2", batch_size=2, stride=20)
    data.setup()
    return next(iter(data.val_dataloader()))


@pytest.fixture(scope="module")
def batch(raw_batch):
    return _module().on_after_batch_transfer(dict(raw_batch), 0)


def test_rendered_inputs_are_added_to_the_batch(raw_batch, batch):
    """The batch gains the motion-VAE inputs of its pairs at 32²: every lip map peaks on the motion pixel holding
    its lip vertex's landmark of the corpus' 256² frame (the stored landmarks are the mesh's projection; 8 frame
    pixels a motion pixel), the driven maps at the driven face's lips, which lie about a motion pixel from the
    reference's (swapped maps fail); and with the driven face set to the reference, PT_d = PT_ref, the lip maps agree
    and the mesh flow is ~0, while PT_ref is the real batch's."""
    assert batch["pt_reference"].shape == batch["pt_driven"].shape == (2, 3, 32, 32)
    assert batch["lip_driven"].shape == (2, 40, 32, 32) and batch["flow_mesh"].shape == (2, 2, 32, 32)
    lips, scale = builtin_morphable_model().lip_ids, 32 / batch["driven_frame"].shape[-1]
    for role in ("driven", "reference"):
        landmarks = raw_batch[f"{role}_landmarks"][:, lips] * scale  # (2, 40, 2) (u, v) motion pixels
        peaks = batch[f"lip_{role}"].flatten(2).argmax(2)
        assert (peaks % 32 + 0.5 - landmarks[..., 0]).abs().max() <= 0.5 + 1e-4, role  # columns
        assert (peaks // 32 + 0.5 - landmarks[..., 1]).abs().max() <= 0.5 + 1e-4, role  # rows
    still = {**raw_batch, **{f"driven_{key}": raw_batch[f"reference_{key}"] for key in FACE_KEYS}}
    still = _module().on_after_batch_transfer(still, 0)
    assert torch.equal(still["pt_reference"], batch["pt_reference"])
    torch.testing.assert_close(still["pt_driven"], still["pt_reference"], atol=1e-5, rtol=0)
    torch.testing.assert_close(still["lip_driven"], still["lip_reference"], atol=1e-5, rtol=0)
    assert still["flow_mesh"].abs().max() < 2e-3  # normalized units: 0.03 motion pixels
    assert (batch["pt_driven"] - batch["pt_reference"]).abs().amax(dim=(1, 2, 3)).min() > 0.1  # the real pairs move


def test_gradients_reach_both_branches_and_the_generator(batch):
    module = _module()
    loss, logs, _ = module.generator_loss(batch, use_gan=True)
    loss.backward()
    for name in ("model.motion.facial", "model.motion.lip", "model.motion.decoder", "model.generator"):
        part = module.get_submodule(name)
        missing = [n for n, p in part.named_parameters() if p.grad is None or not p.grad.any()]
        assert not missing, (name, missing)
    assert {"train/l1", "train/perceptual", "train/kl", "train/gan", "train/feature_matching"} <= set(logs)


def test_the_mouth_term_is_the_l1_over_the_driven_mouth_region_only(batch):
    """``mouth_weight``: :func:`mouth_region` is 1 within ``MOUTH_DILATION`` motion pixels of a lip vertex and
    0 far from the lips; the term is the mean absolute error weighted by it, so an error confined to the
    mouth region counts fully and one outside it not at all, and it adds ``mouth_weight`` × itself to the loss."""
    heat = torch.zeros(1, 40, 32, 32)
    heat[0, 0, 16, 16] = 1.0  # one lip vertex in the middle of a 32² motion map
    region = mouth_region(heat, (128, 128))[0, 0]  # 4 frame pixels per motion pixel
    inside = 4 * MOUTH_DILATION  # frame pixels from the vertex that the dilation covers
    assert region[64, 64] == 1.0 and region[64, 64 + inside - 4] == 1.0 and region[64, 64 + inside + 8] == 0.0
    assert region[:, :32].max() == 0.0
    module = _module(mouth_weight=2.0)
    module.eval()  # the VAE mean: the same frame on every call
    out = module.model(batch["reference_frame"], batch, sample=False)
    target = mouth_region(batch["lip_driven"], out["frame"].shape[-2:])
    outside = {**batch, "driven_frame": (out["frame"] + 0.3 * (target == 0)).detach()}
    within = {**batch, "driven_frame": (out["frame"] + 0.3).detach()}
    module.criterion.weights["gan"] = 0.0
    for case, expected in ((outside, 0.0), (within, 0.3)):
        loss, logs = module.criterion.generator_loss(out, case, use_gan=False)
        assert logs["train/mouth_l1"].item() == pytest.approx(expected, abs=1e-5)
        rest = sum(module.criterion.weights[k] * logs[f"train/{k}"] for k in ("l1", "perceptual", "kl"))
        rest = rest + module.criterion.weights["mesh_flow"] * logs["train/mesh_flow_px"]
        assert loss.item() == pytest.approx((rest + 2.0 * logs["train/mouth_l1"]).item(), rel=1e-5)


def test_overfits_one_pair(batch):
    """L1 of the generated frame on one fixed pair falls by ≥ 3× within 150 Adam steps."""
    module = _module()
    pair = {key: value[:1] if torch.is_tensor(value) else value[:1] for key, value in batch.items()}
    optimizer = torch.optim.Adam([*module.model.motion.parameters(), *module.model.generator.parameters()], lr=3e-3)
    first = None
    for _ in range(150):
        loss, logs, _ = module.generator_loss(pair, use_gan=False)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = logs["train/l1"].item() if first is None else first
    assert logs["train/l1"].item() < first / 3, (first, logs["train/l1"].item())


class _StepRecorder(lightning.Callback):
    """Snapshots every parameter before each optimizer step and after each batch."""

    def __init__(self):
        self.events: list[tuple[str, dict[str, torch.Tensor]]] = []

    def _snapshot(self, module) -> dict[str, torch.Tensor]:
        return {name: p.detach().clone() for name, p in module.named_parameters()}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        owner = "discriminator" if optimizer.param_groups[0]["params"][0] is next(
            pl_module.criterion.discriminator.parameters()) else "generator"  # fmt: skip
        self.events.append((owner, self._snapshot(pl_module)))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.events.append(("end", self._snapshot(pl_module)))


def test_generator_and_discriminator_alternate_and_update_only_their_own_parameters(raw_batch):
    module = _module()
    recorder = _StepRecorder()
    trainer = lightning.Trainer(max_steps=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                                enable_model_summary=False, callbacks=[recorder], accelerator="cpu")  # fmt: skip
    trainer.fit(module, train_dataloaders=DataLoader([dict(raw_batch)] * 2, batch_size=None))
    assert [owner for owner, _ in recorder.events] == ["generator", "discriminator", "end"] * 2

    def changed(before, after, prefix):
        return any(not torch.equal(before[n], after[n]) for n in before if n.startswith(prefix))

    for (_, before_g), (_, before_d), (_, end) in zip(*[iter(recorder.events)] * 3, strict=True):
        assert changed(before_g, before_d, "model.motion.") and changed(before_g, before_d, "model.generator.")
        assert not changed(before_g, before_d, "criterion.discriminator.")
        assert changed(before_d, end, "criterion.discriminator.")
        assert not changed(before_d, end, "model.motion.") and not changed(before_d, end, "model.generator.")


def test_discriminator_waits_for_its_warm_up(raw_batch):
    module = _module(discriminator_start=5)
    recorder = _StepRecorder()
    trainer = lightning.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                                enable_model_summary=False, callbacks=[recorder], accelerator="cpu")  # fmt: skip
    trainer.fit(module, train_dataloaders=DataLoader([dict(raw_batch)] * 2, batch_size=None))
    assert [owner for owner, _ in recorder.events] == ["generator", "end"] * 2


def test_the_discriminator_learning_rate_defaults_to_the_generators_and_may_be_zero():
    rates = [[optimizer.param_groups[0]["lr"] for optimizer in _module(**args).configure_optimizers()] for args in (
        {"lr": 1e-3}, {"lr": 1e-3, "discriminator_lr": 4e-4}, {"lr": 1e-3, "discriminator_lr": 0.0}
    )]  # fmt: skip
    assert rates == [[1e-3, 1e-3], [1e-3, 4e-4], [1e-3, 0.0]]


def _reference_and_driven(raw_batch, count: int = 3):
    reference = {"alpha": raw_batch["alpha"][:1], **{k: raw_batch[f"reference_{k}"][:1] for k in FACE_KEYS}}
    driven = {k: raw_batch[f"driven_{k}"][:1].expand(count, *raw_batch[f"driven_{k}"].shape[1:]) for k in FACE_KEYS}
    return raw_batch["reference_frame"][:1], reference, driven


def test_synthesize_contract_and_same_path_as_training(raw_batch, batch):
    module = _module()
    image, reference, driven = _reference_and_driven(raw_batch)
    outer = module.model.parse_reference(image, reference)
    out = module.model.synthesize(image, reference, driven, outer)
    assert out["frame"].shape == out["pt_driven"].shape == out["warped"].shape == (3, 3, 256, 256)
    assert out["occlusion"].shape == (3, 1, 256, 256)
    assert 0 <= out["frame"].min() and out["frame"].max() <= 1
    assert module.training  # restored after the eval-mode synthesis
    module.eval()
    with torch.no_grad():
        trained_path = module.model(batch["reference_frame"], batch, sample=False)["frame"][:1]
    torch.testing.assert_close(out["frame"][:1], trained_path.clamp(0, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(module.model.synthesize(image, reference, driven)["frame"], out["frame"])


def test_checkpoint_round_trip_gives_identical_frames(raw_batch, tmp_path):
    module = _module()
    trainer = lightning.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    checkpoint = torch.load(tmp_path / "model.ckpt", weights_only=True)
    assert not any(key.startswith("criterion.perceptual.") for key in checkpoint["state_dict"])
    restored = MotionVAEGeneratorModule.load_from_checkpoint(tmp_path / "model.ckpt", map_location="cpu",
                                                             weights_only=True)  # fmt: skip
    assert restored.criterion.perceptual is None  # inference needs no perceptual weights
    image, reference, driven = _reference_and_driven(raw_batch)
    assert torch.equal(module.model.synthesize(image, reference, driven)["frame"],
                       restored.model.synthesize(image, reference, driven)["frame"])  # fmt: skip
    network = load_network(MeshToVideo, tmp_path / "model.ckpt")  # what the pipeline loads: no training code
    assert torch.equal(module.model.synthesize(image, reference, driven)["frame"],
                       network.synthesize(image, reference, driven)["frame"])  # fmt: skip


def test_cli_fit_then_test_on_the_tiny_config(tiny_corpus, tmp_path):
    common = [
        "--config", str(TINY_CONFIG), "--config", str(CSV_LOGGER_CONFIG), "--data.root", str(tiny_corpus),
        "--data.num_workers", "0",
        "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false", "--trainer.limit_val_batches", "1",
        "--trainer.limit_test_batches", "1",
    ]  # fmt: skip
    fit = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.check_val_every_n_epoch", "1",
           "--model.init_args.discriminator_start", "1", "--trainer.log_every_n_steps", "1"]  # fmt: skip
    assert cli_main(["fit", *common, *fit]) == 0
    checkpoint = next(tmp_path.rglob("last.ckpt"))
    assert cli_main(["test", *common, "--ckpt_path", str(checkpoint)]) == 0
    metrics = logged_metrics(tmp_path)
    for name in ("psnr", "ssim", "l1", "mouth_landmark_distance", "mouth_detection_rate"):
        assert math.isfinite(metrics[f"val/{name}"]) and math.isfinite(metrics[f"test/{name}"]), name
    assert 10 < metrics["test/psnr"] < 60 and 0 < metrics["test/ssim"] <= 1
    assert {"train/discriminator", "train/gan"} <= set(metrics)
    grid = sorted(tmp_path.rglob("media/test-*-samples.png"))  # MediaLogger: the first test batch's grid
    assert grid and sorted(tmp_path.rglob("media/val-*-clip_generated_vs_truth.mp4"))


def test_paper_config_without_vgg_weights_fails_in_one_line(tiny_corpus, tmp_path, capsys):
    argv = [
        "fit", "--config", str(PAPER_CONFIG), "--config", str(CSV_LOGGER_CONFIG), "--data.root", str(tiny_corpus),
        "--trainer.accelerator", "cpu",
        "--trainer.devices", "1", "--trainer.precision", "32", "--data.num_workers", "0",
        "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--model.init_args.perceptual_args.weights", str(tmp_path / "vgg19.pth"),
    ]  # fmt: skip
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("talkinghead: error: VGG-19 weights not found")


@pytest.mark.gpu
def test_nvdiffrast_inputs_give_the_torch_backend_loss(raw_batch):
    losses = []
    for backend in ("torch", "nvdiffrast"):
        module = _module(rasterizer=backend).cuda()
        batch = {k: v.cuda() if torch.is_tensor(v) else v for k, v in raw_batch.items()}
        batch = module.on_after_batch_transfer(batch, 0)
        torch.manual_seed(0)
        with torch.no_grad():
            losses.append(module.generator_loss(batch, use_gan=True)[0].item())
    assert losses[1] == pytest.approx(losses[0], rel=1e-2)
