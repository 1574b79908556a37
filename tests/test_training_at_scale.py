"""What a multi-GPU, multi-day training run relies on: self-contained checkpoints, DDP, schedules, resume."""

import os
import shutil
import subprocess
from pathlib import Path

import torch

from talkinghead.data.datamodule import TalkingHeadDataModule
from talkinghead.lightning import FacialMotionModule, MotionVAEGeneratorModule, PoseMapperModule, PoseVQVAEModule
from talkinghead.lightning.cli import main as cli_main
from talkinghead.models import AudioToMotion, load_network
from tests.helpers import ROOT, config_init_args, save_checkpoint, save_wav2vec2_standin, tiny_init_args


def test_a_wav2vec2_checkpoint_loads_without_the_hub_or_the_pretrained_folder(tmp_path, monkeypatch):
    folder = save_wav2vec2_standin(tmp_path / "wav2vec2")
    args = {**tiny_init_args("facial_motion"), "audio_encoder": "wav2vec2"}
    args["audio_encoder_args"] = {"name_or_path": str(folder)}
    torch.manual_seed(0)
    module = FacialMotionModule(**args).eval()
    path = save_checkpoint(module, tmp_path / "facial_motion.ckpt")
    shutil.rmtree(folder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    network = load_network(AudioToMotion, path)
    audio, alpha = torch.randn(1, 16000), torch.zeros(1, 40)
    with torch.no_grad():
        expected, restored = module(audio, alpha, 25), network(audio, alpha, 25)
    assert torch.equal(expected["beta"], restored["beta"]) and torch.equal(
        expected["lip_offsets"], restored["lip_offsets"]
    )
    reloaded = FacialMotionModule.load_from_checkpoint(path, weights_only=True)  # resuming needs no hub either
    assert "name_or_path" not in reloaded.hparams.audio_encoder_args


def test_the_paper_mapper_config_without_a_codebook_is_one_line(capsys):
    config = ROOT / "lightning_configs" / "pose_mapper.yaml"
    assert cli_main(["fit", "--config", str(config), "--data.root", "unused"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("talkinghead: error:")]
    assert len(errors) == 1 and "vqvae_checkpoint" in errors[0] and "Traceback" not in err


def _fake_srun(tmp_path: Path) -> dict[str, str]:
    """A PATH whose ``srun`` writes its arguments, one per line, to ``srun.args`` instead of launching anything."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text(f'#!/bin/bash\nprintf "%s\\n" "$@" > {tmp_path / "srun.args"}\n')
    srun.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_slurm_training_script_launches_one_fit_per_task_with_the_job_geometry(tmp_path):
    env = {**_fake_srun(tmp_path), "SLURM_NNODES": "2", "SLURM_NTASKS_PER_NODE": "8", "SLURM_CPUS_PER_TASK": "6"}
    script = ROOT / "tools" / "slurm" / "train.sbatch"
    subprocess.run(["bash", str(script), "lightning_configs/facial_motion.yaml", "--data.root", "shards"], env=env,
                   check=True)  # fmt: skip
    args = (tmp_path / "srun.args").read_text().splitlines()
    assert args[:4] == ["talkinghead", "fit", "--config", "lightning_configs/facial_motion.yaml"]
    pairs = {args[i]: args[i + 1] for i in range(4, len(args) - 1, 2)}
    assert pairs["--trainer.num_nodes"] == "2" and pairs["--trainer.devices"] == "8"
    assert pairs["--trainer.strategy"] == "ddp" and pairs["--data.num_workers"] == "6"
    assert args[-2:] == ["--data.root", "shards"]


def test_slurm_preprocessing_array_jobs_take_disjoint_parts(tmp_path):
    script = ROOT / "tools" / "slurm" / "preprocess_array.sbatch"
    env = _fake_srun(tmp_path)
    seen = []
    for index in range(3):
        job = {**env, "SLURM_ARRAY_TASK_ID": str(index), "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_CPUS_PER_TASK": "4"}
        subprocess.run(["bash", str(script), "videos/HDTF", "shards/hdtf"], env=job, check=True)
        args = (tmp_path / "srun.args").read_text().splitlines()
        pairs = {args[i]: args[i + 1] for i in range(2, len(args) - 1, 2)}
        assert pairs["--num-shards"] == "3" and pairs["--source"] == "HDTF" and "--resume" in args
        seen.append(pairs["--shard-index"])
    assert seen == ["0", "1", "2"]
    subprocess.run(["bash", str(script), "videos/HDTF", "shards/hdtf"], env=env, check=True)  # the merge pass
    assert "--shard-index" not in (tmp_path / "srun.args").read_text().splitlines()


def _trainable_without_gradient(module: torch.nn.Module) -> list[str]:
    return [name for name, p in module.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]


def test_every_trainable_parameter_of_the_paper_stage1_modules_gets_a_gradient(tiny_corpus, tmp_path):
    """One backward pass reaches every trainable parameter (else DDP without find_unused_parameters stops); the
    ones that legitimately get none — wav2vec 2.0's feature encoder and unused SpecAugment mask, the frozen pose
    codebook — are frozen by construction. The wav2vec 2.0 stand-in keeps the library's LayerDrop setting."""
    data = TalkingHeadDataModule(str(tiny_corpus), fields=["audio", "alpha", "beta", "pose", "lip_offsets"],
                                 window=32, batch_size=2)  # fmt: skip
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    audio = {
        "audio_encoder": "wav2vec2",
        "audio_encoder_args": {"name_or_path": str(save_wav2vec2_standin(tmp_path / "w"))},
    }
    small = {"d_model": 64, "ff_dim": 128}
    vqvae = PoseVQVAEModule(
        **{**config_init_args("pose_vqvae"), "network": {**config_init_args("pose_vqvae")["network"], **small}}
    )
    modules = {
        "facial_motion": FacialMotionModule(
            **{
                **config_init_args("facial_motion"),
                **audio,
                "network": {**config_init_args("facial_motion")["network"], **small},
            }
        ),
        "pose_vqvae": vqvae,
        "pose_mapper": PoseMapperModule(
            **{
                **config_init_args("pose_mapper"),
                **audio,
                "vqvae_checkpoint": str(save_checkpoint(vqvae, tmp_path / "vq.ckpt")),
                "network": {**config_init_args("pose_mapper")["network"], **small},
            }
        ),
    }
    for name, module in modules.items():
        module.train()
        loss = module.loss(batch)[0]
        loss.backward()
        assert not _trainable_without_gradient(module), name
    frozen = [n for n, p in modules["facial_motion"].named_parameters() if not p.requires_grad]
    assert frozen and all("feature_extractor" in n or "masked_spec_embed" in n for n in frozen)
    assert not any(p.requires_grad for p in modules["pose_mapper"].model.vqvae.parameters())


def test_every_trainable_parameter_of_the_paper_stage2_module_gets_a_gradient_in_its_step(tiny_corpus):
    data = TalkingHeadDataModule(str(tiny_corpus), mode="stage2", batch_size=2, stride=20)
    data.setup("fit")
    args = {**config_init_args("motion_vae"), "perceptual": "gradients", "perceptual_args": None, "render_size": 128}
    module = MotionVAEGeneratorModule(**args)
    module.setup("fit")
    batch = module.on_after_batch_transfer(next(iter(data.train_dataloader())), 0)
    loss, _, out = module.generator_loss(batch, use_gan=True)
    loss.backward()
    assert not _trainable_without_gradient(module.model)
    module.zero_grad()
    module.criterion.discriminator_step_loss(batch["driven_frame"], out["frame"]).backward()
    assert not _trainable_without_gradient(module.criterion.discriminator)
    assert all(p.grad is None for p in module.model.parameters())  # the fake frames are detached
