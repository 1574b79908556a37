"""Turn trained checkpoints into shareable weights: safetensors + JSON configs + a model card.

``python tools/export_weights.py CHECKPOINT_DIR OUT_DIR [--dataset TEXT]``: ``CHECKPOINT_DIR`` holds
``facial_motion.ckpt``, ``pose_mapper.ckpt`` and ``motion_vae.ckpt`` (what ``TalkingHeadPipeline.from_checkpoints``
reads, e.g. ``outputs/demo/checkpoints``). Each inference network is rebuilt from its checkpoint without training
code (:func:`talkinghead.models.checkpoints.build_network`; training-only parts such as the stage-2 discriminator
and perceptual network are left behind) and written by :func:`talkinghead.models.export.write_export`:
``audio_to_motion``, ``head_pose`` and ``mesh_to_video`` as ``.safetensors`` + ``.json``, and ``README.md``, a model
card with what each network was trained on and for how long (epoch, optimizer steps), the metrics its checkpoint
callbacks recorded (e.g. ``ModelCheckpoint``'s best score), intended use, limits and licence (Apache-2.0). No pickle
is written. The folder appears complete or not at all; bad input is one line on stderr and exit code 2.
``TalkingHeadPipeline.from_pretrained(OUT_DIR)`` and ``talkinghead-generate --checkpoints OUT_DIR`` load it.
"""

import argparse
import json
import sys
from pathlib import Path

from talkinghead.cli_conventions import add_common_arguments, configure_logging, verbosity
from talkinghead.models.checkpoints import UnreadableCheckpointError, build_network, network_arguments, read_checkpoint
from talkinghead.models.export import EXPORTED_NETWORKS, ExportError, write_export

STAGES = {"facial_motion": "audio_to_motion", "pose_mapper": "head_pose", "motion_vae": "mesh_to_video"}
TITLES = {
    "audio_to_motion": "audio → facial motion (blendshapes β and lip offsets; §3.2, Eq. 2–4)",
    "head_pose": "audio → head pose (pose mapper over the frozen pose codebook; §3.2, Eq. 5–8)",
    "mesh_to_video": "mesh → video (dual-branch motion-VAE + generator; §3.3, Eq. 9–10)",
}


def read_stage(folder: Path, stage: str) -> dict:
    """The checkpoint ``<stage>.ckpt`` of ``folder`` as a dict; :class:`ExportError` naming the file otherwise."""
    path = folder / f"{stage}.ckpt"
    if not path.is_file():
        raise ExportError(f"{path}: no such file (a checkpoint folder holds {', '.join(f'{s}.ckpt' for s in STAGES)})")
    try:
        checkpoint = read_checkpoint(path)
    except UnreadableCheckpointError as error:
        raise ExportError(str(error)) from None
    if "state_dict" not in checkpoint:
        raise ExportError(f"{path}: not a Lightning checkpoint (no state_dict)")
    return checkpoint


def _plain(value):
    """A checkpoint value as plain JSON-able data (tensors → numbers or lists)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value if isinstance(value, int | float | str | bool | type(None)) else str(value)


def logged_metrics(checkpoint: dict) -> list[str]:
    """One line per callback state that recorded a score (``ModelCheckpoint``: the monitored metric, its best and
    its latest value)."""
    lines = []
    for key, state in checkpoint.get("callbacks", {}).items():
        if not isinstance(state, dict) or state.get("best_model_score") is None:
            continue
        best, current = _plain(state["best_model_score"]), _plain(state.get("current_score"))
        callback = str(key).split("{")[0]
        latest = f", latest {current:.6g}" if isinstance(current, float | int) else ""
        lines.append(f"`{state.get('monitor')}`: best {best:.6g}{latest} ({callback})")
    return lines


def training_section(name: str, stage: str, checkpoint: dict, network, arguments: dict, dataset: str | None) -> str:
    """The model card's paragraph on one network: source, data, duration, metrics, training settings."""
    hyper = dict(checkpoint.get("hyper_parameters", {}))
    settings = {key: value for key, value in hyper.items() if key not in arguments}
    data = checkpoint.get("datamodule_hyper_parameters")
    if dataset:
        trained_on = dataset
    elif data:
        trained_on = f"shards under `{_plain(data.get('root'))}` (data module arguments below)"
    else:
        trained_on = "not recorded in the checkpoint"
    metrics = logged_metrics(checkpoint) or ["none recorded in the checkpoint (no monitored validation)"]
    lines = [
        f"### `{name}` — {TITLES[name]}",
        "",
        f"- class `{type(network).__name__}`, {sum(p.numel() for p in network.parameters()):,} parameters, "
        f"from `{stage}.ckpt` (Lightning {checkpoint.get('pytorch-lightning_version', 'unknown')})",
        f"- trained on: {trained_on}",
        f"- training length: epoch {checkpoint.get('epoch', 'unknown')} (0-based, when saved), "
        f"{checkpoint.get('global_step', 'unknown')} optimizer steps",
        "- weights: "
        + (
            "the exponential moving average (EMA) kept in training"
            if "current_model_state" in checkpoint
            else "as trained"
        ),
        "- logged metrics: " + "; ".join(metrics),
    ]
    if name == "head_pose" and hyper.get("vqvae_checkpoint"):
        lines.append(
            f"- the frozen pose VQ-VAE inside was trained first, from `{Path(hyper['vqvae_checkpoint']).name}`"
        )
    lines += ["", "Training settings:", "", "```json", json.dumps(_plain(settings), indent=1), "```"]
    if data:
        lines += ["", "Data module arguments:", "", "```json", json.dumps(_plain(data), indent=1), "```"]
    return "\n".join(lines)


def model_card(sections: list[str], face_models: set[str]) -> str:
    """The export's ``README.md`` (Hugging Face model-card front matter, then the text)."""
    face_limit = (
        "- The networks use a FaceVerse model file that is not included (not redistributable): "
        + ", ".join(f"`{path}`" for path in sorted(face_models - {"builtin"}))
        + " must exist where the configs say.\n"
        if face_models - {"builtin"}
        else ""
    )
    return f"""---
license: apache-2.0
library_name: talkinghead
tags:
- talking-head
- audio-driven
- lip-sync
- vividtalk
---

# talkinghead weights (VividTalk)

The three inference networks of talkinghead, an open, trainable implementation of VividTalk (Sun et al.,
*One-Shot Audio-Driven Talking Head Generation Based on 3D Hybrid Prior*): one portrait photo + one speech
recording → a lip-synced 256² talking-head video at 25 fps.

## Use

```python
from talkinghead.pipeline import TalkingHeadPipeline
pipeline = TalkingHeadPipeline.from_pretrained("THIS_FOLDER_OR_HUB_ID", device="cpu")
pipeline.generate("portrait.jpg", "speech.wav", "out.mp4")
```

or `talkinghead-generate --checkpoints THIS_FOLDER_OR_HUB_ID --image portrait.jpg --audio speech.wav --out out.mp4`.
Each `NAME.json` holds the constructor arguments of `NAME.safetensors`' network (audio encoders included, as their
full configuration), so nothing else is downloaded. The files are safetensors and JSON only; no pickle.

## Training

{(chr(10) * 2).join(sections)}

## Intended use

Research on and demonstrations of one-shot, audio-driven talking-head generation: animating a portrait you have
the right to use with speech you have the right to use, studying lip sync, head motion and mesh-guided rendering.
Not for impersonating people, for deceiving viewers about what someone said, or for any use without the consent
of the person shown; label generated videos as synthetic.

## Limits

- Quality is bounded by the training data and length above. Weights trained on the embedded synthetic corpus
  (`make demo`: espeak-ng speech, faces warped from one photo, minutes on a CPU) show the method working end to
  end; they do not generalise to real faces and voices like weights trained on HDTF / VoxCeleb.
- The output is a 256² face crop at 25 fps (optionally pasted back into the photo); large head turns, occlusions,
  profile views, several speakers and non-speech audio are outside what the networks saw.
- Lip sync, head motion and identity preservation have not been validated for any population beyond the training
  data; biases of that data carry over.
{face_limit}
## Licence

Apache-2.0, like the code. The licences and terms of the data the networks were trained on apply separately.
"""


def export(checkpoint_dir: str | Path, out: str | Path, dataset: str | None = None) -> Path:
    """Read the three checkpoints of ``checkpoint_dir`` and write their export to ``out`` (module docstring)."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        raise ExportError(f"{str(folder)!r}: no such folder")
    networks, sections, face_models = {}, [], set()
    for stage, name in STAGES.items():
        checkpoint = read_stage(folder, stage)
        cls = EXPORTED_NETWORKS[name]
        try:
            network = build_network(cls, checkpoint, f"checkpoint {folder / f'{stage}.ckpt'}")
        except (RuntimeError, TypeError, ValueError, OSError) as error:
            raise ExportError(f"{stage}.ckpt: {str(error).splitlines()[0]}") from None
        arguments = network_arguments(cls, dict(checkpoint.get("hyper_parameters", {})))
        networks[name] = (network, arguments)
        sections.append(training_section(name, stage, checkpoint, network, arguments, dataset))
        if "face_model" in arguments:
            face_models.add(str(arguments["face_model"]))
    return write_export(out, networks, model_card(sections, face_models))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Export the three inference networks of a checkpoint folder as safetensors + JSON + model card."
    )
    parser.add_argument("checkpoint_dir", help="folder with facial_motion.ckpt, pose_mapper.ckpt and motion_vae.ckpt")
    parser.add_argument("out_dir", help="export folder (created; a previous export there is replaced)")
    parser.add_argument("--dataset", help="what the networks were trained on, for the model card")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(verbosity(args))
    try:
        out = export(args.checkpoint_dir, args.out_dir, args.dataset)
    except (ExportError, OSError) as error:
        print(f"export_weights: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out}: {', '.join(sorted(path.name for path in out.iterdir()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
