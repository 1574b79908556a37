"""FID as published numbers compute it: torch-fidelity's FID Inception and pytorch-fid's closed form.

The real ``pt_inception-2015-12-05`` weights cannot be fetched in tests, so a stand-in file is built here: the
same architecture (torchvision's Inception v3 layout, 1008 classes, no auxiliary head) with random weights and
BatchNorm statistics calibrated on one random batch so that the features neither vanish nor overflow. Tolerances
(measured): the FID of the features equals pytorch-fid's formula (``scipy.linalg.sqrtm`` of ``Σ₁Σ₂``) within
1e-3 relative (1e-15), two identical sets give 0 within 1e-9 of the covariance trace (4e-16), and torchmetrics'
copy of the extractor (``antialias=False``) gives the same features within 1e-5 of their scale (identical).
"""

import numpy as np
import pytest
import scipy.linalg
import torch
import torchvision
from torchmetrics.image.fid import NoTrainInceptionV3

from talkinghead.evaluation.fid import fid_from_features, frechet_distance, load_inception
from talkinghead.models.weights import WeightsError


@pytest.fixture(scope="module")
def standin_weights(tmp_path_factory):
    torch.manual_seed(0)
    network = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average: one batch sets the statistics
    with torch.no_grad():
        network.train()(torch.rand(2, 3, 299, 299) * 2 - 1)
    path = tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(network.state_dict(), path)
    return path


def _frames(count: int, seed: int, brightness: int = 0) -> torch.Tensor:
    """(count, 48, 40, 3) uint8 RGB: smooth colour gradients with noise (non-square, so the resize matters)."""
    generator = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, 40)[None, :, None] * torch.linspace(0, 1, 48)[:, None, None]
    colours = torch.rand(count, 1, 1, 3, generator=generator) * 200
    noise = torch.rand(count, 48, 40, 3, generator=generator) * 40
    return (colours * ramp + noise + brightness).clamp(0, 255).to(torch.uint8)


def _pytorch_fid_distance(real: np.ndarray, generated: np.ndarray) -> float:
    """pytorch-fid's ``calculate_frechet_distance`` (sqrtm of Σ₁Σ₂), in an orthonormal basis of the span of both
    centred sets and the mean difference: FID is invariant to rotations and everything lies in that span, so the
    value is the 2048-d one while sqrtm works on a matrix of at most 2N dimensions."""
    mu1, mu2 = real.mean(0), generated.mean(0)
    basis = scipy.linalg.orth(np.vstack([real - mu1, generated - mu2, (mu1 - mu2)[None]]).T)
    real, generated = real @ basis, generated @ basis
    sigma1, sigma2 = np.cov(real, rowvar=False), np.cov(generated, rowvar=False)
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    diff = real.mean(0) - generated.mean(0)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def test_fid_of_fid_inception_features_matches_pytorch_fid_and_torchmetrics(standin_weights):
    inception = load_inception(standin_weights)
    real, generated = _frames(3, seed=1), _frames(3, seed=2, brightness=30)
    features = inception(torch.cat([real, generated]))
    assert features.shape == (6, 2048) and features.dtype == torch.float64
    reference = NoTrainInceptionV3("inception-v3-compat", ["2048"], str(standin_weights), antialias=False)
    expected = reference(torch.cat([real[:1], generated[:1]]).permute(0, 3, 1, 2)).double()  # NCHW input
    scale = expected.abs().max()
    assert torch.isfinite(expected).all() and scale > 1.0  # calibrated stand-in: features neither vanish nor overflow
    assert (features[[0, 3]] - expected).abs().max() <= 1e-5 * scale
    real_features, generated_features = features[:3].numpy(), features[3:].numpy()
    fid = fid_from_features(real_features, generated_features)
    assert fid > 0 and fid == pytest.approx(_pytorch_fid_distance(real_features, generated_features), rel=1e-3)
    assert abs(fid_from_features(real_features, real_features)) <= 1e-9 * np.trace(np.cov(real_features.T))


def test_fid_of_gaussians_with_known_non_commuting_covariances():
    """Features with exactly prescribed sample mean and covariance. In 2-D, ``tr M^½ = √(tr M + 2 √det M)`` for
    ``M = Σ₁Σ₂`` (eigenvalues real and ≥ 0), so the distance has a closed form also when Σ₁Σ₂ ≠ Σ₂Σ₁."""
    rng = np.random.default_rng(0)
    white = rng.normal(size=(400, 2))
    white -= white.mean(0)
    white = white @ np.linalg.inv(np.linalg.cholesky(np.cov(white.T))).T  # sample mean 0, covariance I
    mu1, mu2 = np.array([1.0, -2.0]), np.array([0.5, 1.0])
    sigma1, sigma2 = np.array([[2.0, 0.8], [0.8, 1.0]]), np.array([[0.5, -0.3], [-0.3, 3.0]])
    real = mu1 + white @ np.linalg.cholesky(sigma1).T
    generated = mu2 + white[::-1] @ np.linalg.cholesky(sigma2).T
    product = sigma1 @ sigma2
    trace_root = np.sqrt(np.trace(product) + 2 * np.sqrt(np.linalg.det(product)))
    expected = (mu1 - mu2) @ (mu1 - mu2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_root
    assert fid_from_features(real, generated) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-12)


def test_inception_files_that_are_not_the_fid_weights_are_one_line_errors(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "pickled.pth")
    with pytest.raises(WeightsError, match="pickles Python objects"):
        load_inception(tmp_path / "pickled.pth")
    state = {"fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)}  # an ImageNet-sized head
    torch.save(state, tmp_path / "imagenet.pth")
    with pytest.raises(WeightsError, match=r"shape mismatches 2 \(fc.weight \(1000, 2048\) vs \(1008, 2048\), fc.bias"):
        load_inception(tmp_path / "imagenet.pth")
