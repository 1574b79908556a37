"""Fréchet Inception Distance (VividTalk §4.1 "FID [12]", Table 1, Same-Identity column).

FID (Heusel et al., "GANs trained by a two time-scale update rule converge to a local Nash equilibrium",
NeurIPS 2017) fits a Gaussian to the 2048-d pool features of Inception v3 (Szegedy et al., CVPR 2016) for
real and for generated frames and reports their Fréchet distance::

    FID = ‖μ_r − μ_g‖² + tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^½)

The network is the FID Inception of published numbers: ``FeatureExtractorInceptionV3`` of torch-fidelity
(Obukhov et al.), the same network and pre-processing as torchmetrics' ``FrechetInceptionDistance``, a
PyTorch port of the TensorFlow graph ``inception-2015-12-05`` of the original FID code (TTUR). Its weights
come from a file the user supplies, never downloaded: pytorch-fid's release file
``pt_inception-2015-12-05-6726825d.pth`` (:data:`WEIGHTS_FILE`; torch-fidelity's own download,
``weights-inception-2015-12-05-6726825d.pth``, has the same SHA-256 prefix and the same layout), given to
``talkinghead-evaluate --inception-weights``.

Frames (uint8 RGB, any size) are resized to 299² by torch-fidelity's bilinear resampling that reproduces
TensorFlow 1.x's ``resize_bilinear``, mapped to ``(x − 128) / 128`` and reduced to the 2048 pool-3
features; the Fréchet distance of their Gaussians is :func:`fid_from_features`. pytorch-fid resizes with
PyTorch's bilinear interpolation instead, which only matters for frames not already 299².
"""

import os

import numpy as np
import scipy.linalg
import torch
import torchvision
from torch import nn
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from talkinghead.models.weights import check_fits, load_state_dict_file, weights_error

FEATURES = 2048
WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's release file of the FID Inception weights


class InceptionFeatures(nn.Module):
    """(B, H, W, 3) uint8 RGB frames → (B, 2048) float64 FID Inception pool features (no gradients)."""

    def __init__(self, extractor: FeatureExtractorInceptionV3):
        super().__init__()
        self.extractor = extractor.eval().requires_grad_(False)

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        device = next(self.extractor.parameters()).device
        (features,) = self.extractor(frames.to(device).permute(0, 3, 1, 2))
        return features.double().cpu()


def load_inception(path: str | os.PathLike) -> InceptionFeatures:
    """The FID Inception with the weights of ``path`` (module docstring); :class:`WeightsError` when unusable.

    The file is first read with ``weights_only=True`` and its keys and shapes checked against the network
    (whose layer names are torchvision's Inception v3 with 1008 classes and no auxiliary head), so a file
    that pickles code or does not fit is refused with one line before torch-fidelity loads it.
    """
    state = load_state_dict_file("Inception", path)
    with torch.device("meta"):
        layout = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    check_fits(layout.state_dict(), state, "Inception", path)
    try:
        extractor = FeatureExtractorInceptionV3("inception-v3-compat", [str(FEATURES)], str(path))
    except RuntimeError as error:
        raise weights_error("Inception", path, str(error).splitlines()[0]) from None
    return InceptionFeatures(extractor)


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
