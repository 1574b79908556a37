"""CSIM: identity preservation as the cosine similarity of face-recognition embeddings (VividTalk §4.1).

"cosine similarity (CSIM) between the reference image and generated frames": the mean over generated
frames of ``cos(e(reference), e(frame_t))`` with ``e`` an ArcFace-style backbone (Deng et al., "ArcFace:
Additive angular margin loss for deep face recognition", CVPR 2019).

The backbone is :class:`~talkinghead.models.iresnet.IResNet` with the user's weights: the state dict of an
insightface ``arcface_torch`` model-zoo backbone (``backbone.pth``; r18/r34/r50/r100, the depth read from its
keys), read with ``torch.load(weights_only=True)`` and loaded strictly. It maps

    (B, 3, 112, 112) float32 RGB in [−1, 1], faces aligned to the ArcFace 5-point template → (B, D).

Faces are aligned here from the FaceMesh landmarks: eye centres, nose tip and mouth corners are mapped to the
ArcFace template (:data:`ARCFACE_TEMPLATE`) by a least-squares similarity transform, as insightface's
``norm_crop`` does with its 5 detected points.
"""

import os
import zipfile
from collections.abc import Callable
from functools import lru_cache

import cv2
import numpy as np
import skimage.transform
import torch

from talkinghead.face.regions import face_regions
from talkinghead.metrics.articulation import NOSE_TIP
from talkinghead.models.iresnet import IResNet
from talkinghead.models.weights import load_state_dict_file, load_strict, weights_error

FACE_SIZE = 112
# insightface's 112 × 112 template: image-left eye, image-right eye, nose tip, image-left and -right mouth corner.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


@lru_cache(maxsize=1)
def _keypoint_groups() -> tuple[np.ndarray, ...]:
    regions = face_regions()
    corners = regions["lip_outer_upper"][[0, -1]]
    return regions["eye_left"], regions["eye_right"], np.array([NOSE_TIP]), corners[:1], corners[1:]


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """ArcFace's 5 points (5, 2) in template order from FaceMesh landmarks (468, ≥2) in pixels."""
    eye_a, eye_b, nose, mouth_a, mouth_b = (landmarks[ids, :2].mean(axis=0) for ids in _keypoint_groups())
    eyes = sorted((eye_a, eye_b), key=lambda p: p[0])
    mouth = sorted((mouth_a, mouth_b), key=lambda p: p[0])
    return np.stack([*eyes, nose, *mouth])


def align_face(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(112, 112, 3) uint8 RGB face aligned to :data:`ARCFACE_TEMPLATE` by a similarity transform."""
    transform = skimage.transform.SimilarityTransform()
    transform.estimate(five_points(landmarks), ARCFACE_TEMPLATE)
    return cv2.warpAffine(np.ascontiguousarray(image), transform.params[:2], (FACE_SIZE, FACE_SIZE), borderValue=0)


def _is_export_archive(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a ``torch.export.save`` archive (a zip with an ``archive_format`` entry)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/archive_format") for name in archive.namelist())


def load_identity_network(path: str | os.PathLike) -> IResNet:
    """The IResNet of a model-zoo state dict (module docstring), in eval mode; :class:`WeightsError` naming the file
    when it is unreadable, pickles objects, or holds another network."""
    if _is_export_archive(path):
        raise weights_error(
            "identity",
            path,
            "a torch.export archive, which is not read (loading one unpickles code); pass the "
            "model zoo's backbone.pth state dict",
        )
    state = load_state_dict_file("identity", path)
    try:
        blocks, embedding_dim = IResNet.architecture(state)
    except ValueError as error:
        raise weights_error("identity", path, str(error)) from None
    network = IResNet(blocks, embedding_dim)
    load_strict(network, state, "identity", path)
    return network.eval()


@torch.no_grad()
def identity_embeddings(
    network: Callable[[torch.Tensor], torch.Tensor], faces: np.ndarray, batch_size: int = 32
) -> torch.Tensor:
    """Aligned faces (N, 112, 112, 3) uint8 → (N, D) float32 embeddings (inputs scaled to [−1, 1])."""
    outputs = []
    for start in range(0, len(faces), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(faces[start : start + batch_size])).permute(0, 3, 1, 2)
        inputs = batch.float() / 127.5 - 1.0
        try:
            embedding = network(inputs)
        except Exception as error:  # the exported program's guards raise AssertionError/RuntimeError
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(
                f"identity network rejected a batch of shape {tuple(inputs.shape)} ({first}); "
                "export it with a dynamic batch dimension for (B, 3, 112, 112) inputs"
            ) from None
        outputs.append(embedding.reshape(len(inputs), -1).float())
    return torch.cat(outputs)


def cosine_similarity_to(reference: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
    """(D,) × (N, D) → (N,) cosine similarities."""
    return torch.nn.functional.cosine_similarity(embeddings, reference[None], dim=-1)


def csim(reference: torch.Tensor, embeddings: torch.Tensor) -> float:
    """CSIM: mean over frames of ``cos(reference, frame)``; reference (D,), frames (N, D)."""
    return float(cosine_similarity_to(reference, embeddings).mean())
