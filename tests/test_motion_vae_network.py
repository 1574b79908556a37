"""Stage-2 networks (§3.3, Fig. 5): warp convention, motion-VAE, generator, discriminator, perceptual losses."""

import pytest
import torch

from talkinghead.models.discriminator import MultiScaleDiscriminator
from talkinghead.models.frame_generator import FrameGenerator
from talkinghead.models.losses import discriminator_loss, feature_matching_loss, generator_adversarial_loss
from talkinghead.models.motion_vae import DualBranchMotionVAE, kl_divergence
from talkinghead.models.perceptual import GradientPyramid, VGG19Pyramid, build_perceptual_loss, vgg19_weights_path
from talkinghead.render.warp import identity_grid, resize_flow, warp

SMALL_MOTION = {
    "facial_channels": (8, 16),
    "latent_channels": 4,
    "facial_features": 8,
    "lip_channels": (8, 16),
    "lip_features": 8,
    "decoder_channels": 8,
    "decoder_layers": 1,
}


def _inputs(batch: int = 2, size: int = 16, landmarks: int = 5) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    return (
        torch.rand(batch, 3, size, size, generator=generator),
        torch.rand(batch, 3, size, size, generator=generator),
        torch.rand(batch, landmarks, size, size, generator=generator),
        torch.rand(batch, landmarks, size, size, generator=generator),
    )


@pytest.mark.parametrize("size", [(64, 64), (32, 128), (256, 256)])
def test_zero_flow_warps_to_the_identity_exactly(size):
    image = torch.rand(2, 3, *size)
    assert torch.equal(warp(image, torch.zeros(2, 2, *size)), image)


def test_flow_is_a_backward_displacement_in_normalized_units():
    """A flow of +3 pixels in x (2·3/W normalized) makes output column j show input column j + 3."""
    image = torch.rand(1, 3, 8, 32)
    flow = torch.zeros(1, 2, 8, 32)
    flow[:, 0] = 2 * 3 / 32
    flow[:, 1] = -2 * 1 / 8  # and one pixel up: output row i shows input row i − 1
    warped = warp(image, flow)
    torch.testing.assert_close(warped[..., 1:, :-3], image[..., :-1, 3:], atol=1e-5, rtol=0)
    assert identity_grid(8, 32)[0, 0, 0].tolist() == [-1 + 1 / 32, -1 + 1 / 8]


def test_resized_flow_keeps_its_normalized_value():
    flow = torch.full((1, 2, 16, 16), 0.125)
    assert torch.equal(resize_flow(flow, (64, 64)), torch.full((1, 2, 64, 64), 0.125))


def test_motion_vae_shapes_start_at_identity_and_use_the_mean_at_inference():
    torch.manual_seed(0)
    net = DualBranchMotionVAE(5, **SMALL_MOTION)
    out = net(*_inputs())
    assert out.flow.shape == (2, 2, 16, 16) and out.occlusion.shape == (2, 1, 16, 16)
    assert out.mu.shape == out.logvar.shape == (2, 4, 4, 4)
    assert torch.equal(out.flow, torch.zeros_like(out.flow))  # zero-initialized flow head
    assert ((out.occlusion > 0.8) & (out.occlusion < 1)).all()
    assert torch.equal(net(*_inputs()).occlusion, out.occlusion)  # mean: deterministic
    torch.nn.init.normal_(net.decoder.flow.weight)
    sampled = [net(*_inputs(), sample=True).flow for _ in range(2)]
    assert not torch.equal(sampled[0], sampled[1])
    with pytest.raises(ValueError, match="divisible by 4"):
        net(*_inputs(size=18))


def test_kl_is_zero_for_the_prior_and_positive_otherwise():
    zeros = torch.zeros(2, 4, 3, 3)
    assert kl_divergence(zeros, zeros).item() == 0.0
    assert kl_divergence(zeros + 1, zeros).item() == pytest.approx(0.5 * 4)


def test_no_lip_branch_ablation_ignores_the_lip_maps():
    torch.manual_seed(0)
    net = DualBranchMotionVAE(5, **SMALL_MOTION, lip_branch=False)
    assert net.lip is None
    pt_ref, pt_d, lips_ref, lips_d = _inputs()
    torch.nn.init.normal_(net.decoder.flow.weight)
    first = net(pt_ref, pt_d, lips_ref, lips_d).flow
    assert torch.equal(first, net(pt_ref, pt_d, torch.zeros_like(lips_ref), lips_ref).flow)
    with_lips = DualBranchMotionVAE(5, **SMALL_MOTION)
    torch.nn.init.normal_(with_lips.decoder.flow.weight)
    assert not torch.equal(with_lips(pt_ref, pt_d, lips_ref, lips_d).flow, with_lips(pt_ref, pt_d, lips_d, lips_d).flow)


def test_gradients_reach_both_branches_and_the_generator():
    torch.manual_seed(0)
    motion = DualBranchMotionVAE(5, **SMALL_MOTION)
    generator = FrameGenerator(channels=(8, 16), num_residual=1)
    reference, target = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    out = motion(*_inputs(), sample=True)
    frame = generator(reference, out.flow, out.occlusion)["frame"]
    ((frame - target).abs().mean() + kl_divergence(out.mu, out.logvar)).backward()
    for name, module in (("facial", motion.facial), ("lip", motion.lip), ("decoder", motion.decoder),
                         ("generator", generator)):  # fmt: skip
        missing = [n for n, p in module.named_parameters() if p.grad is None or not p.grad.any()]
        assert not missing, (name, missing)


def test_generator_output_is_the_warp_where_the_occlusion_is_one():
    torch.manual_seed(0)
    generator = FrameGenerator(channels=(8, 16), num_residual=1)
    reference = torch.rand(1, 3, 32, 32)
    out = generator(reference, torch.zeros(1, 2, 8, 8), torch.ones(1, 1, 8, 8))
    assert torch.equal(out["frame"], reference) and torch.equal(out["warped"], reference)
    assert out["occlusion"].shape == (1, 1, 32, 32)


def test_discriminator_scales_and_losses():
    torch.manual_seed(0)
    discriminator = MultiScaleDiscriminator(scales=(1.0, 0.5), channels=4, num_layers=2)
    real, fake = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    outputs = discriminator(real)
    assert [logits.shape for _, logits in outputs] == [(2, 1, 8, 8), (2, 1, 4, 4)]
    ones = [([], torch.ones(1, 1, 2, 2))]
    zeros = [([], torch.zeros(1, 1, 2, 2))]
    assert generator_adversarial_loss(ones, "lsgan").item() == 0.0
    assert generator_adversarial_loss(zeros, "lsgan").item() == 1.0
    assert discriminator_loss(ones, zeros, "lsgan").item() == 0.0
    assert discriminator_loss(ones, zeros, "hinge").item() == 1.0  # relu(1 − 1) + relu(1 + 0)
    assert feature_matching_loss(outputs, outputs).item() == 0.0
    assert feature_matching_loss(outputs, discriminator(fake)).item() > 0
    with pytest.raises(ValueError, match="lsgan"):
        generator_adversarial_loss(ones, "wgan")


def test_gradient_pyramid_is_zero_only_for_identical_images():
    loss = GradientPyramid(scales=(1.0, 0.5))
    image = torch.rand(1, 3, 32, 32)
    assert loss(image, image).item() == 0.0
    shifted = torch.roll(image, 1, dims=-1)
    assert loss(shifted, image).item() > 0.1
    assert isinstance(build_perceptual_loss("gradients"), GradientPyramid)
    with pytest.raises(ValueError, match="vgg19"):
        build_perceptual_loss("lpips")


def test_vgg19_without_weights_fails_in_one_line(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        VGG19Pyramid(weights=tmp_path / "vgg19.pth")
    assert "nothing is downloaded" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.skipif(not vgg19_weights_path().is_file(), reason="VGG-19 weights not in torchvision's cache")
def test_vgg19_pyramid_with_cached_weights():
    loss = VGG19Pyramid(scales=(1.0, 0.5))
    image = torch.rand(1, 3, 64, 64)
    assert loss(image, image).item() == 0.0 and loss(image.flip(-1), image).item() > 0
