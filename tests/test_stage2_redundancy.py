"""Stage 2 does each piece of work once: the results equal the straightforward computation they replace.

* a reference driving a batch is rendered once (:meth:`MeshToVideo.synthesize`), not once per frame, and a
  prepared reference (:meth:`MeshToVideo.prepare_reference`, a stream's portrait) not again in later calls;
* the prior flow is rendered only for a network that uses it;
* a reference shared by training pairs is parsed and rendered once (:func:`distinct_references`);
* the discriminator runs once on the real frames of a training step.

Each test computes the old, straightforward result in the test and compares; the networks are small stand-ins
built here (64² frames, 8–16 channels) with a stand-in parser (:class:`_CountingParser`), so no corpus is needed.
"""

import copy

import lightning
import pytest
import torch
from torch.utils.data import DataLoader

from talkinghead.face import builtin_morphable_model
from talkinghead.lightning import MotionVAEGeneratorModule
from talkinghead.lightning.motion_vae import distinct_references
from talkinghead.models import MeshToVideo
from talkinghead.models.losses import discriminator_loss
from talkinghead.models.mesh_to_video import FACE_KEYS
from talkinghead.render import FaceParser
from talkinghead.render.motion_inputs import FLOWS
from tests.helpers import SMALL_MESH_TO_VIDEO

SMALL = {**SMALL_MESH_TO_VIDEO, "face_parser": f"{__name__}._CountingParser"}
TRAINING = {
    "perceptual": "gradients",
    "mesh_flow_weight": 0.1,
    "discriminator_start": 0,
    "mouth_metric": False,
    "discriminator": {"scales": [1.0, 0.5], "channels": 8, "num_layers": 2},
}
# Per-item results of batched float32 ops may differ from a differently batched call in the last bits.
ATOL = 1e-5


class _CountingParser(FaceParser):
    """Stand-in parser: head where the image is bright, background elsewhere; counts the images it parses."""

    parsed = 0

    def parse(self, images, face_points):
        type(self).parsed += images.shape[0]
        head = (images.mean(1, keepdim=True) > 0.5).to(images.dtype)
        return torch.cat((1.0 - head, head, torch.zeros_like(head)), dim=1)


def _faces(count: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    limits = torch.tensor([0.15, 0.25, 0.08, 1.0, 1.0, 1.5])
    lips = builtin_morphable_model().num_lip_vertices
    return {
        "beta": torch.rand(count, 52, generator=generator) * 0.4,
        "pose": (torch.rand(count, 6, generator=generator) * 2 - 1) * limits,
        "lip_offsets": torch.randn(count, lips, 3, generator=generator) * 0.05,
    }


def _network(flow_prior: bool) -> MeshToVideo:
    torch.manual_seed(0)
    network = MeshToVideo(**SMALL, flow_prior=flow_prior).eval()
    torch.nn.init.normal_(network.motion.decoder.flow.weight, std=0.3)  # a non-zero flow to compare
    return network


@pytest.mark.parametrize("flow_prior", [False, True])
def test_batched_synthesis_equals_the_per_pair_rendering_and_per_frame_synthesis(flow_prior):
    """``synthesize`` of 3 frames (reference rendered once, prior flow only with ``flow_prior``) equals the
    straightforward path — the reference expanded to the batch and rendered per pair with every flow — and
    synthesizing each frame alone, within 1e-5."""
    network = _network(flow_prior)
    count = 3
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    reference = {"alpha": torch.randn(1, network.inputs.model.num_identity) * 0.3, **_faces(1, seed=2)}
    driven = _faces(count, seed=3)
    outer = network.parse_reference(image, reference)
    out = network.synthesize(image, reference, driven, outer)

    def expand(x: torch.Tensor) -> torch.Tensor:
        return x.expand(count, *x.shape[1:])

    inputs = network.inputs(
        expand(reference["alpha"]), {k: expand(reference[k]) for k in FACE_KEYS}, driven, expand(outer), flows=FLOWS
    )
    with torch.no_grad():
        expected = network(expand(image), inputs, sample=False)
    torch.testing.assert_close(out["frame"], expected["frame"].clamp(0, 1), atol=ATOL, rtol=0)
    torch.testing.assert_close(out["occlusion"], expected["occlusion"], atol=ATOL, rtol=0)
    assert (out["frame"] - image).abs().mean() > 0.01  # the frames differ from the reference: a real comparison
    for i in range(count):
        alone = network.synthesize(image, reference, {k: v[i : i + 1] for k, v in driven.items()}, outer)
        torch.testing.assert_close(alone["frame"][0], out["frame"][i], atol=ATOL, rtol=0)


def test_a_prepared_reference_is_parsed_and_rasterized_once_for_every_later_call():
    """``prepare_reference`` + ``drive`` over 3 calls parses the portrait once and rasterizes only the driven
    meshes (3 + 2 + 1 of them, not 3 more references), and each call's frames equal ``synthesize``'s exactly."""
    network = _network(flow_prior=True)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    reference = {"alpha": torch.randn(1, network.inputs.model.num_identity) * 0.3, **_faces(1, seed=2)}
    calls = [_faces(count, seed=10 + count) for count in (3, 2, 1)]
    _CountingParser.parsed = 0
    prepared = network.prepare_reference(image, reference)
    rasterizer = network.inputs._renderer(image.device).rasterizer
    meshes = []
    original = rasterizer.rasterize
    rasterizer.rasterize = lambda screen, *args, **kwargs: meshes.append(screen.shape[0]) or original(
        screen, *args, **kwargs
    )
    try:
        driven_frames = [network.drive(prepared, driven)["frame"] for driven in calls]
    finally:
        del rasterizer.rasterize
    assert _CountingParser.parsed == 1
    assert meshes == [3, 2, 1]
    for driven, frames in zip(calls, driven_frames, strict=True):
        assert torch.equal(frames, network.synthesize(image, reference, driven)["frame"])


def test_flows_are_rendered_only_when_asked_and_the_rest_is_unchanged():
    network = _network(flow_prior=False)
    alpha = torch.zeros(3, network.inputs.model.num_identity)
    reference, driven = _faces(3, seed=4), _faces(3, seed=5)
    outer = _CountingParser().parse(torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(6)), None)
    full = network.inputs(alpha, reference, driven, outer, flows=FLOWS)
    bare = network.inputs(alpha, reference, driven, outer, flows=())
    assert set(full) - set(bare) == set(FLOWS)
    for key, value in bare.items():
        torch.testing.assert_close(value, full[key], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="flows"):
        network.inputs(alpha, reference, driven, outer, flows=("optical",))


def _training_batch() -> dict:
    """Four pairs: clip ``a`` frame 0 is the reference of pairs 0, 1 and 3; pair 2 has its own."""
    generator = torch.Generator().manual_seed(7)
    frames = torch.rand(2, 3, 64, 64, generator=generator)
    faces = _faces(2, seed=8)
    alpha = torch.randn(2, builtin_morphable_model().num_identity, generator=generator) * 0.3
    owner = torch.tensor([0, 0, 1, 0])
    batch = {
        "clip_id": ["a", "a", "b", "a"],
        "reference_index": torch.tensor([0, 0, 3, 0]),
        "reference_frame": frames[owner],
        "driven_frame": torch.rand(4, 3, 64, 64, generator=generator),
        "alpha": alpha[owner],
        **{f"reference_{key}": value[owner] for key, value in faces.items()},
        **{f"driven_{key}": value for key, value in _faces(4, seed=9).items()},
    }
    return batch


def test_shared_training_references_are_parsed_once_and_render_as_per_pair():
    batch = _training_batch()
    firsts, pairs = distinct_references(batch)
    assert firsts == [0, 2] and pairs.tolist() == [0, 0, 1, 0]
    other = {**batch, "reference_frame": batch["reference_frame"].clone()}
    other["reference_frame"][3] += 0.1  # same clip and frame index, other pixels: not shared
    assert distinct_references(other)[0] == [0, 2, 3]
    assert distinct_references({k: v for k, v in batch.items() if k != "clip_id"})[1] is None

    torch.manual_seed(0)
    module = MotionVAEGeneratorModule(**SMALL, **TRAINING)
    _CountingParser.parsed = 0
    rendered = module.on_after_batch_transfer(dict(batch), 0)
    assert _CountingParser.parsed == 2
    faces = [{key: batch[f"{role}_{key}"] for key in FACE_KEYS} for role in ("reference", "driven")]
    per_pair = module.model.render_inputs(batch["reference_frame"], batch["alpha"], *faces)  # one parse per pair
    assert _CountingParser.parsed == 2 + 4
    assert set(per_pair) <= set(rendered)
    for key, value in per_pair.items():
        torch.testing.assert_close(rendered[key], value, atol=ATOL, rtol=0)


class _GradientRecorder(lightning.Callback):
    """Seeds the batch's latent sample and records each optimizer's gradients before its step."""

    def __init__(self, seed: int):
        self.seed, self.gradients = seed, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        torch.manual_seed(self.seed)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        params = [p for group in optimizer.param_groups for p in group["params"]]
        self.gradients.append([None if p.grad is None else p.grad.clone() for p in params])


def test_training_step_losses_and_gradients_equal_two_discriminator_passes():
    """One generator + discriminator step (the discriminator run once on the real frames) gives the losses and
    both networks' gradients of the straightforward step — a no-grad pass on the real frames for the
    feature-matching targets and a second pass for the discriminator's loss — within 1e-6 (rtol 1e-5)."""
    torch.manual_seed(0)
    module = MotionVAEGeneratorModule(**SMALL, **TRAINING)
    module.setup("fit")
    straightforward = copy.deepcopy(module)
    batch, seed = _training_batch(), 11
    recorder = _GradientRecorder(seed)
    trainer = lightning.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                                enable_model_summary=False, callbacks=[recorder], accelerator="cpu")  # fmt: skip
    trainer.fit(module, train_dataloaders=DataLoader([dict(batch)], batch_size=None))

    rendered = straightforward.on_after_batch_transfer(dict(batch), 0)
    torch.manual_seed(seed)
    out = straightforward.model(rendered["reference_frame"], rendered, sample=True)
    criterion = straightforward.criterion
    loss, _ = criterion.generator_loss(out, rendered, True)  # its own no-grad pass on the real frames
    generator_params = [*straightforward.model.motion.parameters(), *straightforward.model.generator.parameters()]
    generator_grads = torch.autograd.grad(loss, generator_params, allow_unused=True)
    d_loss = discriminator_loss(
        criterion.discriminator(rendered["driven_frame"]),
        criterion.discriminator(out["frame"].detach()),
        criterion.gan_loss,
    )
    discriminator_grads = torch.autograd.grad(d_loss, list(criterion.discriminator.parameters()))

    metrics = trainer.callback_metrics
    torch.testing.assert_close(metrics["train/loss"], loss.detach(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(metrics["train/discriminator"], d_loss.detach(), atol=1e-6, rtol=1e-5)
    assert len(recorder.gradients) == 2
    for recorded, expected in zip(recorder.gradients, (generator_grads, discriminator_grads), strict=True):
        assert len(recorded) == len(expected)
        for got, want in zip(recorded, expected, strict=True):
            assert (got is None) == (want is None)
            if want is not None:
                torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    assert any(grad.abs().max() > 0 for grad in discriminator_grads)
