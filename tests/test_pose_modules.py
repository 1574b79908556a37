"""PoseVQVAEModule (Eq. 12) and PoseMapperModule (Eq. 13) through Lightning: checkpoints, the CLI, errors."""

import math
import warnings
from pathlib import Path

import lightning
import pytest
import torch

from talkinghead.data.datamodule import TalkingHeadDataModule
from talkinghead.lightning.cli import TalkingHeadCLI
from talkinghead.lightning.cli import main as cli_main
from talkinghead.lightning.pose_mapper import PoseMapperModule
from talkinghead.lightning.pose_vqvae import PoseVQVAEModule, target_pose
from talkinghead.lightning.stage import ConfigurationError
from talkinghead.media import probe_video
from talkinghead.metrics.pose import mean_jerk
from talkinghead.models.checkpoints import UnreadableCheckpointError
from tests.helpers import CSV_LOGGER_CONFIG, SHORT_CLIP_WINDOW, logged_metrics, smooth_poses

ROOT = Path(__file__).resolve().parents[1]
VQVAE_CONFIG = ROOT / "lightning_configs" / "pose_vqvae_tiny.yaml"
MAPPER_CONFIG = ROOT / "lightning_configs" / "pose_mapper_tiny.yaml"
SMALL_VQVAE = {"d_model": 32, "num_heads": 2, "num_layers": 1, "ff_dim": 64, "code_dim": 16, "num_codes": 32}
SMALL_MAPPER = {"d_model": 32, "num_heads": 2, "num_layers": 1, "ff_dim": 64, "dropout": 0.0}


@pytest.fixture(scope="module")
def batch(tiny_corpus):
    data = TalkingHeadDataModule(str(tiny_corpus), fields=["audio", "alpha", "pose"], window=24, batch_size=4)
    data.setup()
    return next(iter(data.train_dataloader()))


def _save(module: lightning.LightningModule, path: Path) -> Path:
    trainer = lightning.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def vqvae_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    module = PoseVQVAEModule(network=SMALL_VQVAE).eval()
    return _save(module, tmp_path_factory.mktemp("vqvae") / "pose_vqvae.ckpt")


def test_vqvae_checkpoint_round_trip(batch, vqvae_checkpoint):
    module = PoseVQVAEModule.load_from_checkpoint(vqvae_checkpoint, weights_only=True).eval()
    again = PoseVQVAEModule.load_from_checkpoint(vqvae_checkpoint, weights_only=True).eval()
    with torch.no_grad():
        first, second = module(batch["pose"]), again(batch["pose"])
    assert torch.equal(first["pose"], second["pose"]) and torch.equal(first["indices"], second["indices"])
    assert first["pose"].shape == batch["pose"].shape and first["indices"].shape == (batch["pose"].shape[0], 6, 1)
    loss, logs, _ = module.loss(batch)
    assert torch.isfinite(loss) and set(logs) == {
        "train/loss",
        "train/reconstruction",
        "train/codebook",
        "train/commitment",
    }


def _trained_vqvae_jerk(velocity_weight: float) -> tuple[float, float]:
    """150 Adam steps of ``PoseVQVAEModule.loss`` with a causal decoder on one batch of smooth poses → the mean
    angle jerk (deg/frame³) of its reconstruction and the reconstruction term of Eq. 12."""
    torch.manual_seed(0)
    network = {**SMALL_VQVAE, "causal": True, "causal_upsampling": True, "max_context": 32, "restart_after": 20}
    module = PoseVQVAEModule(network=network, velocity_weight=velocity_weight)
    optimizer = torch.optim.Adam(module.parameters(), lr=3e-3)
    batch = {"pose": smooth_poses(8, 32)}
    for _ in range(150):
        optimizer.zero_grad()
        module.loss(batch)[0].backward()
        optimizer.step()
    module.eval()
    with torch.no_grad():
        reconstruction = module(batch["pose"])["pose"]
    return mean_jerk(reconstruction)[0].mean().item(), module.net.normalized_error(reconstruction, batch["pose"]).item()


def test_the_velocity_term_makes_the_decoded_pose_smooth():
    """The trajectories' own jerk is 1.05 deg/frame³; Eq. 12 alone decodes them at about 3.6 (the code steps show as
    steps), with the velocity term at under half of that, and its reconstruction term no worse."""
    plain_jerk, plain_error = _trained_vqvae_jerk(0.0)
    smooth_jerk, smooth_error = _trained_vqvae_jerk(30.0)
    assert smooth_jerk < plain_jerk / 2, (plain_jerk, smooth_jerk)
    assert smooth_error < 1.2 * plain_error, (plain_error, smooth_error)


def test_mapper_checkpoint_round_trip_and_frozen_vqvae(batch, vqvae_checkpoint, tmp_path):
    torch.manual_seed(0)
    module = PoseMapperModule(str(vqvae_checkpoint), network=SMALL_MAPPER)
    reference = PoseVQVAEModule.load_from_checkpoint(vqvae_checkpoint, weights_only=True).net
    for name, tensor in reference.state_dict().items():
        assert torch.equal(module.model.vqvae.state_dict()[name], tensor), name
    module.train()
    assert not module.model.vqvae.training and module.model.net.training
    assert not any(p.requires_grad for p in module.model.vqvae.parameters())
    loss, logs = module.loss(batch)
    loss.backward()
    assert set(logs) == {"train/loss", "train/pose", "train/latent", "train/code"}
    assert all(p.grad is None for p in module.model.vqvae.parameters())
    optimizer = module.configure_optimizers()
    assert sum(len(g["params"]) for g in optimizer.param_groups) == sum(1 for p in module.model.net.parameters())

    module.eval()
    path = _save(module, tmp_path / "mapper.ckpt")
    restored = PoseMapperModule.load_from_checkpoint(path, weights_only=True).eval()
    args = (batch["audio"], batch["alpha"], batch["pose"][:, 0], 24)
    first = module(*args, temperature=1.0, top_k=8, generator=torch.Generator().manual_seed(3))
    second = restored(*args, temperature=1.0, top_k=8, generator=torch.Generator().manual_seed(3))
    assert first.shape == (batch["pose"].shape[0], 24, 6) and torch.equal(first, second)


def _eval_mode_warnings(module: lightning.LightningModule, batch: dict) -> list[str]:
    """Lightning's "module(s) in eval mode at the start of training" warnings of a one-step fit of ``module``."""
    trainer = lightning.Trainer(
        max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader([batch], batch_size=None))
    assert trainer.global_step == 1
    return [str(w.message) for w in caught if "in eval mode at the start of training" in str(w.message)]


def test_a_frozen_codebook_in_eval_mode_is_not_reported_but_a_module_left_in_eval_mode_is(batch, vqvae_checkpoint):
    """The mapper's frozen VQ-VAE stays in eval mode on purpose: no warning. A dropout of the trainable mapper
    left in eval mode is what Lightning's warning is for: it counts it beside the VQ-VAE's modules."""
    torch.manual_seed(0)
    module = PoseMapperModule(str(vqvae_checkpoint), network={**SMALL_MAPPER, "dropout": 0.1})
    frozen = sum(1 for _ in module.model.vqvae.modules())
    assert frozen > 1 and not module.model.vqvae.training
    assert _eval_mode_warnings(module, batch) == []

    module = PoseMapperModule(str(vqvae_checkpoint), network={**SMALL_MAPPER, "dropout": 0.1})
    dropout = next(m for m in module.model.net.modules() if isinstance(m, torch.nn.Dropout))
    dropout.eval()
    assert _eval_mode_warnings(module, batch) == [
        f"Found {frozen + 1} module(s) in eval mode at the start of training. This may lead to unexpected behavior "
        "during training. If this is intentional, you can ignore this warning."
    ]


def test_scheduled_sampling_feeds_the_mapper_its_own_codes_at_the_given_rate(batch, vqvae_checkpoint):
    """``teacher_forcing_ratio`` r: a training step's input code is Z_q with probability r, else the code drawn from
    the mapper's teacher-forced prediction (here its nearest code, temperature 0); evaluation and r = 1 feed Z_q."""
    torch.manual_seed(0)
    module = PoseMapperModule(str(vqvae_checkpoint), network=SMALL_MAPPER, sample_temperature=0.0)
    vqvae, mapper = module.model.vqvae, module.model.net
    pose = batch["pose"].repeat(64, 1, 1)  # 256 windows × 6 code steps
    audio, alpha, initial = batch["audio"].repeat(64, 1), batch["alpha"].repeat(64, 1), pose[:, 0]
    features = module.model.audio_encoder(audio, pose.shape[1])
    codes, _ = vqvae.quantizer.quantize(vqvae.encode(target_pose(pose, mapper.absolute_pose)))
    with torch.no_grad():
        nearest, _ = vqvae.quantizer.quantize(mapper(features, alpha, initial, codes))
    differ = (nearest != codes).any(-1)  # steps where the two candidates can be told apart
    assert differ.float().mean() > 0.5
    for ratio, training in ((0.0, True), (0.5, True), (1.0, True), (0.5, False)):
        module.hparams.teacher_forcing_ratio = ratio
        module.train(training)
        with torch.no_grad():
            inputs = module.scheduled_inputs(features, alpha, initial, codes)
        is_truth = (inputs == codes).all(-1)
        assert (is_truth | (inputs == nearest).all(-1)).all()  # every input is one of the two
        kept = is_truth[differ].float().mean().item()
        expected = ratio if training else 1.0
        assert abs(kept - expected) < 0.06, (ratio, training, kept)  # over ≥ 768 steps: 3 standard deviations


def test_mapper_checkpoint_is_self_contained(batch, vqvae_checkpoint, tmp_path):
    """A mapper checkpoint reloads the same frozen VQ-VAE after the VQ-VAE checkpoint is gone."""
    moved = tmp_path / "pose_vqvae.ckpt"
    moved.write_bytes(vqvae_checkpoint.read_bytes())
    module = PoseMapperModule(str(moved), network=SMALL_MAPPER).eval()
    path = _save(module, tmp_path / "mapper.ckpt")
    moved.unlink()
    restored = PoseMapperModule.load_from_checkpoint(path, weights_only=True).eval()
    assert not restored.model.vqvae.training and not any(p.requires_grad for p in restored.model.vqvae.parameters())
    for name, tensor in module.state_dict().items():
        assert torch.equal(restored.state_dict()[name], tensor), name


def test_a_mapper_restores_its_own_vqvae_where_its_path_now_names_another(batch, vqvae_checkpoint, tmp_path, caplog):
    """A relative ``vqvae_checkpoint`` read from another folder can name another VQ-VAE there (or the file was
    replaced): the mapper checkpoint's own network and weights are restored, with a warning naming the file; a
    new fit on such a mismatch stops with one line instead of training on a VQ-VAE it never loaded."""
    module = PoseMapperModule(str(vqvae_checkpoint), network=SMALL_MAPPER).eval()
    path = _save(module, tmp_path / "mapper.ckpt")
    torch.manual_seed(1)
    other = _save(PoseVQVAEModule(network={**SMALL_VQVAE, "num_codes": 16}), tmp_path / "other.ckpt")
    restored = PoseMapperModule.load_from_checkpoint(path, weights_only=True, vqvae_checkpoint=str(other)).eval()
    assert "other.ckpt" in caplog.text and "another PoseVQVAE" in caplog.text
    assert restored.model.vqvae.quantizer.num_codes == SMALL_VQVAE["num_codes"]
    for name, tensor in module.state_dict().items():
        assert torch.equal(restored.state_dict()[name], tensor), name
    fresh = PoseMapperModule(str(other), network=SMALL_MAPPER, vqvae_network=dict(module.hparams.vqvae_network))
    trainer = lightning.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_steps=1)
    with pytest.raises(ConfigurationError, match="other.ckpt"):
        trainer.fit(fresh, [batch])


def test_missing_vqvae_checkpoint_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "pose_vqvae.ckpt"
    with pytest.raises(FileNotFoundError, match="nowhere/pose_vqvae.ckpt"):
        PoseMapperModule(str(missing))


def test_a_vqvae_checkpoint_that_is_no_checkpoint_is_one_line_of_the_cli(tmp_path, capsys):
    """A text file as the mapper's codebook checkpoint: the module names it, and ``talkinghead fit`` prints that one
    line and exits 2 (torch's unpickling traceback before)."""
    bad = tmp_path / "pose_vqvae.ckpt"
    bad.write_text("not a checkpoint\n")
    with pytest.raises(UnreadableCheckpointError, match=f"^{bad}: not a readable checkpoint \\(UnpicklingError\\)$"):
        PoseMapperModule(str(bad))
    config = Path(__file__).resolve().parents[1] / "lightning_configs" / "pose_mapper_tiny.yaml"
    argv = ["fit", "--config", str(config), "--model.init_args.vqvae_checkpoint", str(bad)]
    argv += ["--trainer.default_root_dir", str(tmp_path / "run")]
    assert cli_main(argv) == 2
    assert capsys.readouterr().err.endswith(f"talkinghead: error: {bad}: not a readable checkpoint (UnpicklingError)\n")


def test_mismatched_vqvae_checkpoint_reports_the_keys(vqvae_checkpoint, tmp_path):
    checkpoint = torch.load(vqvae_checkpoint, weights_only=True)
    checkpoint["state_dict"].pop("net.decoder_in.weight")
    checkpoint["state_dict"]["net.extra"] = torch.zeros(1)
    torch.save(checkpoint, tmp_path / "broken.ckpt")
    with pytest.raises(RuntimeError, match=r"missing keys \['decoder_in.weight'\].*unexpected keys \['extra'\]"):
        PoseMapperModule(str(tmp_path / "broken.ckpt"))


def _common(config: Path, corpus: Path, out: Path) -> list[str]:
    return [
        "--config", str(config), "--config", str(CSV_LOGGER_CONFIG), "--data.root", str(corpus),
        "--trainer.default_root_dir", str(out),
        "--trainer.logger.init_args.save_dir", str(out), "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip


def test_cli_fit_then_test_vqvae_then_mapper(tiny_corpus, tmp_path, monkeypatch):
    vq_dir, map_dir = tmp_path / "vqvae", tmp_path / "mapper"
    common = [*_common(VQVAE_CONFIG, tiny_corpus, vq_dir), *SHORT_CLIP_WINDOW]
    epochs = ["--trainer.max_epochs", "2", "--trainer.check_val_every_n_epoch", "1"]
    assert cli_main(["fit", *common, *epochs]) == 0
    vqvae_ckpt = next(vq_dir.rglob("last.ckpt"))
    assert cli_main(["test", *common, "--ckpt_path", str(vqvae_ckpt)]) == 0
    metrics = logged_metrics(vq_dir)
    for name in ("angle_error_deg", "translation_error_cm", "codebook_usage", "perplexity"):
        assert math.isfinite(metrics[f"val/{name}"]) and math.isfinite(metrics[f"test/{name}"]), name
    assert 0 < metrics["test/codebook_usage"] <= 1 and metrics["test/perplexity"] >= 1
    usage = sorted(vq_dir.rglob("media/*-codebook_usage.csv"))[-1]  # MediaLogger: one row of counts per code
    counts = list(map(int, usage.read_text().split(",")))
    assert len(counts) == 4 * 64 and sum(counts) == 4 * 6 * 4  # 4 codebooks of 64; 4 windows × 6 steps × 4 groups
    assert usage.with_suffix(".png").is_file()

    common = [*_common(MAPPER_CONFIG, tiny_corpus, map_dir), *SHORT_CLIP_WINDOW]
    common += ["--model.init_args.vqvae_checkpoint", str(vqvae_ckpt)]
    assert cli_main(["fit", *common, *epochs]) == 0
    mapper_ckpt = next(map_dir.rglob("last.ckpt"))
    assert cli_main(["test", *common, "--ckpt_path", str(mapper_ckpt)]) == 0
    metrics = logged_metrics(map_dir)
    for name in (
        "angle_error_deg",
        "translation_error_cm",
        "hpd_generated",
        "hpd_ground_truth",
        "diversity_deg",
        "diversity_cm",
        "jerk_deg",
        "jerk_cm",
    ):
        assert math.isfinite(metrics[f"val/{name}"]) and math.isfinite(metrics[f"test/{name}"]), name
    assert metrics["test/hpd_ground_truth"] > 0
    video = sorted(map_dir.rglob("media/*-head_pose_sampled_vs_truth.mp4"))[-1]
    assert probe_video(video).has_audio and probe_video(video).width == 512

    # With --ckpt_path the checkpoint's arguments rebuild the network (d_model 32 given, the checkpoint's 64 built);
    # the evaluation arguments keep the values given (2 seeds, temperature 0.5; the checkpoint's: 5 and 1).
    built = {}
    monkeypatch.setattr(TalkingHeadCLI, "_run_subcommand", lambda cli, name: built.update(cli.model.hparams))
    given = ["--model.init_args.num_eval_seeds", "2", "--model.init_args.sample_temperature", "0.5"]
    given += ["--model.init_args.network.d_model", "32"]
    assert cli_main(["test", *common, "--ckpt_path", str(mapper_ckpt), *given]) == 0
    assert (built["num_eval_seeds"], built["sample_temperature"], built["network"]["d_model"]) == (2, 0.5, 64)
    # A value equal to the constructor's default (3 seeds) is what a command line without it gives: the checkpoint's.
    assert cli_main(["test", *common, "--ckpt_path", str(mapper_ckpt), "--model.init_args.num_eval_seeds", "3"]) == 0
    assert built["num_eval_seeds"] == 5


def test_cli_reports_a_missing_vqvae_checkpoint(tiny_corpus, tmp_path, capsys):
    """A missing VQ-VAE checkpoint ends in one line naming the path and exit code 2."""
    missing = tmp_path / "no_such" / "pose_vqvae.ckpt"
    argv = ["fit", *_common(MAPPER_CONFIG, tiny_corpus, tmp_path), "--model.init_args.vqvae_checkpoint", str(missing)]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("talkinghead: error:") and str(missing) in err[-1]
