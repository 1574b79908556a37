"""Weight-free metrics of audio-driven facial motion on meshes (units: the model's, cm for the built-in).

* lip vertex error (LVE, as in MeshTalk/FaceFormer): per frame the *maximum* L2 error over the lip
  vertices, averaged over frames;
* mouth opening: distance between the middles of the inner upper and inner lower lip contours
  (MediaPipe vertices 13 and 14 on the built-in model); its Pearson correlation with the ground truth
  is accumulated by the training module over a whole split;
* upper-face dynamics deviation (FDD, FaceFormer): per upper-face vertex (eyes and brows) the standard
  deviation over time of its displacement from the sequence mean, ground truth minus prediction,
  averaged over vertices (positive = the prediction moves the upper face too little).
"""

from dataclasses import dataclass

import torch

from talkinghead.face.morphable_model import MorphableModel

UPPER_FACE_REGIONS = ("eye_left", "eye_right", "brow_left", "brow_right")


@dataclass(frozen=True)
class FaceMeasurements:
    """Vertex ids the metrics need, read from a morphable model's named regions."""

    lip_ids: torch.Tensor  # (L,)
    opening_pair: tuple[int, int]  # inner upper / inner lower lip middle
    corner_pair: tuple[int, int]  # mouth corners (outer contour ends)
    upper_face_ids: torch.Tensor  # (U,)

    @classmethod
    def from_model(cls, model: MorphableModel) -> "FaceMeasurements":
        upper, lower = model.region("lip_inner_upper"), model.region("lip_inner_lower")
        outer = model.region("lip_outer_upper")
        upper_face = torch.cat([model.region(name) for name in UPPER_FACE_REGIONS]).unique()
        return cls(
            lip_ids=model.lip_ids.cpu(),
            opening_pair=(int(upper[len(upper) // 2]), int(lower[len(lower) // 2])),
            corner_pair=(int(outer[0]), int(outer[-1])),
            upper_face_ids=upper_face.cpu(),
        )

    def mouth_width(self, vertices: torch.Tensor) -> torch.Tensor:
        """Distance between the mouth corners, (...,) from vertices (..., N, 3)."""
        a, b = self.corner_pair
        return (vertices[..., a, :] - vertices[..., b, :]).norm(dim=-1)


def lip_vertex_error(predicted: torch.Tensor, target: torch.Tensor, lip_ids: torch.Tensor) -> torch.Tensor:
    """Per-frame max L2 error over the lip vertices, (...,) from vertices (..., N, 3)."""
    return (predicted[..., lip_ids, :] - target[..., lip_ids, :]).norm(dim=-1).amax(dim=-1)


def mouth_opening(vertices: torch.Tensor, pair: tuple[int, int]) -> torch.Tensor:
    """Inner-lip opening (...,) from vertices (..., N, 3)."""
    return (vertices[..., pair[0], :] - vertices[..., pair[1], :]).norm(dim=-1)


def upper_face_dynamics_deviation(predicted: torch.Tensor, target: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """FDD per sequence, (B,) from vertex sequences (B, T, N, 3) (see the module docstring)."""

    def dynamics(vertices: torch.Tensor) -> torch.Tensor:
        region = vertices[:, :, ids]  # (B, T, U, 3)
        return (region - region.mean(dim=1, keepdim=True)).norm(dim=-1).std(dim=1)  # (B, U)

    return (dynamics(target) - dynamics(predicted)).mean(dim=-1)
