"""Fréchet Inception Distance (VividTalk §4.1 "FID [12]", Table 1, Same-Identity column).

FID (Heusel et al., "GANs trained by a two time-scale update rule converge to a local Nash equilibrium",
NeurIPS 2017) fits a Gaussian to the 2048-d pool features of Inception v3 (Szegedy et al., CVPR 2016) for
real and for generated frames and reports their Fréchet distance::

    FID = ‖μ_r − μ_g‖² + tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^½)

The network is torchvision's Inception v3 definition with the user's weights (never downloaded):

* torchvision's ImageNet file ``inception_v3_google-0cc3c7bd.pth`` (1000 classes, auxiliary head), or
* pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (1008 classes, the TF FID graph's weights).

Frames are resized to 299² (bilinear) and scaled to [−1, 1], as both weight sets expect. torchvision's
blocks average-pool with the zero padding counted and max-pool in the last block where the TF graph
averages, so with pytorch-fid's weights the values are close to, not identical with, pytorch-fid's.
"""

import os

import numpy as np
import scipy.linalg
import torch
import torchvision
from torch import nn

from talkinghead.evaluation.weights import load_state_dict_file, load_strict

INPUT_SIZE = 299
FEATURES = 2048


class InceptionFeatures(nn.Module):
    """(B, H, W, 3) uint8 RGB frames → (B, 2048) Inception v3 pool features (eval mode, no gradients)."""

    def __init__(self, network: torchvision.models.Inception3):
        super().__init__()
        network.fc = nn.Identity()
        self.network = network.eval().requires_grad_(False)

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        device = next(self.network.parameters()).device
        images = frames.to(device).permute(0, 3, 1, 2).float() / 255.0
        images = nn.functional.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return self.network(2.0 * images - 1.0).double().cpu()


def load_inception(path: str | os.PathLike) -> InceptionFeatures:
    """Inception v3 feature extractor from a torchvision or pytorch-fid state dict (module docstring)."""
    state = load_state_dict_file("Inception", path)
    classes = state["fc.weight"].shape[0] if "fc.weight" in state else 1000
    auxiliary = any(key.startswith("AuxLogits.") for key in state)
    network = torchvision.models.inception_v3(
        weights=None, aux_logits=auxiliary, init_weights=False, num_classes=classes, transform_input=False
    )
    load_strict(network, state, "Inception", path)
    return InceptionFeatures(network)


def feature_statistics(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features, N ≥ 2 → mean (D,) and unbiased covariance (D, D), float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"FID needs at least two feature vectors, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of a symmetric PSD matrix with round-off negatives set to 0: (√λ, V)."""
    values, vectors = scipy.linalg.eigh(matrix)
    return np.sqrt(np.clip(values, 0.0, None)), vectors


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance of two Gaussians (module docstring).

    ``tr (Σ₁Σ₂)^½`` is computed as ``tr (Σ₁^½ Σ₂ Σ₁^½)^½`` (similar matrices, same eigenvalues), i.e. from two
    symmetric eigen-decompositions: exact, real by construction, also for the singular covariances of
    fewer frames than feature dimensions, and about ten times faster than ``scipy.linalg.sqrtm`` of the
    non-symmetric product at 2048 dimensions.
    """
    difference = mu1 - mu2
    roots, vectors = _sqrt_psd(sigma1)
    root1 = (vectors * roots) @ vectors.T
    middle = root1 @ sigma2 @ root1
    trace_root = _sqrt_psd((middle + middle.T) / 2.0)[0].sum()
    return float(difference @ difference + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root)


def fid_from_features(real: np.ndarray | torch.Tensor, generated: np.ndarray | torch.Tensor) -> float:
    """FID between two feature sets (N_r, D) and (N_g, D).

    With fewer vectors than dimensions in either set the covariances are low-rank and the trace term has a
    cheaper exact form: with centred features X₁, X₂, the non-zero eigenvalues of Σ₁Σ₂ are the squared
    singular values of X₁X₂ᵀ / √((N₁−1)(N₂−1)), so ``tr (Σ₁Σ₂)^½`` is that matrix's nuclear norm.
    """
    real, generated = np.asarray(real, dtype=np.float64), np.asarray(generated, dtype=np.float64)
    (mu1, sigma1), (mu2, sigma2) = feature_statistics(real), feature_statistics(generated)
    if min(len(real), len(generated)) >= real.shape[1]:
        return frechet_distance(mu1, sigma1, mu2, sigma2)
    centred1, centred2 = real - mu1, generated - mu2
    scale = np.sqrt((len(real) - 1) * (len(generated) - 1))
    trace_root = np.linalg.svd(centred1 @ centred2.T, compute_uv=False).sum() / scale
    difference = mu1 - mu2
    return float(difference @ difference + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root)
