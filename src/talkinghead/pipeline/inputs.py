"""User inputs of the generator: the portrait image, the face in it, and an optional head-pose file.

Every problem is a :class:`GenerationInputError` (or the audio module's ``AudioError``) with one line that
names the file and the problem, so ``talkinghead-generate`` can print it and exit non-zero.

* Images are read by :func:`talkinghead.face.images.load_image_rgb` (Pillow, EXIF orientation applied):
  grayscale, palette, RGBA/LA (composited on white), 16-bit and 32-bit integer, float and CMYK images are
  converted to 8-bit RGB, not rejected.
* Faces: :func:`talkinghead.face.detection.detect_faces` finds up to six; with several, the largest (area of its
  landmark box) is used unless ``face_index`` picks another (0 = largest), and a note says so. A face whose landmark
  box is smaller than :data:`MIN_FACE_SIZE` pixels is rejected: upscaling it to the 256² crop would give the
  networks a blur they never saw in training.
* Pose files (``--pose FILE``): ``.npy`` or ``.csv`` (comma-separated, optional header line) of shape (T, 6)
  — pitch, yaw, roll in radians, tx, ty, tz in cm, the corpus convention (:mod:`talkinghead.face.pose`) —
  or a video (:data:`VIDEO_SUFFIXES`) whose head poses are estimated per frame as the preprocessing tool
  does: FaceMesh tracking in video mode (the largest face), one fixed crop box for the whole video and the
  closed-form clip fit smoothed over σ = 1 frame (:func:`talkinghead.face.video_fit.fit_tracked_clip`).
  Only the motion is used: the sequence is made relative to its first row and added to the portrait's pose
  (as the mapper's P⁰ + P_r, Eq. 8); a sequence shorter than the speech is played forwards and backwards
  (ping-pong) so it never jumps.
"""

from pathlib import Path

import numpy as np
import torch

from talkinghead.conventions import FPS, MIN_FACE_SIZE, POSE_DIM, VIDEO_SUFFIXES
from talkinghead.face.camera import PerspectiveCamera
from talkinghead.face.detection import FaceMeshDetector, detect_faces
from talkinghead.face.images import load_image_rgb
from talkinghead.face.morphable_model import MorphableModel
from talkinghead.face.video_fit import fit_tracked_clip
from talkinghead.media import VideoError, iter_video_frames


class GenerationInputError(ValueError):
    """An input the generator cannot use; the message is one line naming the input and the problem."""


def load_portrait_image(path: str | Path) -> np.ndarray:
    """An image file → (H, W, 3) uint8 RGB, upright, any common mode (:func:`talkinghead.face.images.
    load_image_rgb`), with its problems as :class:`GenerationInputError`."""
    path = Path(path)
    if not path.is_file():
        raise GenerationInputError(f"image {str(path)!r}: no such file")
    try:
        return load_image_rgb(path)
    except ValueError as error:
        raise GenerationInputError(str(error)) from None


def choose_face(image: np.ndarray, face_index: int | None, name: str) -> tuple[np.ndarray, list[str]]:
    """The landmarks of the chosen face and notes for the user; errors for no face / bad index / tiny face."""
    faces = detect_faces(image)
    if not faces:
        raise GenerationInputError(f"image {name!r}: no face found")
    notes = []
    index = 0 if face_index is None else face_index
    if not 0 <= index < len(faces):
        raise GenerationInputError(f"image {name!r}: --face-index {index} but {len(faces)} face(s) found")
    if len(faces) > 1 and face_index is None:
        notes.append(
            f"{len(faces)} faces found; using the largest (choose another with --face-index 1…{len(faces) - 1})"
        )
    landmarks = faces[index]
    size = float(np.ptp(landmarks[:, :2], axis=0).max())
    if size < MIN_FACE_SIZE:
        raise GenerationInputError(
            f"image {name!r}: face too small ({size:.0f} px across, need at least {MIN_FACE_SIZE} px)"
        )
    return landmarks, notes


def load_pose_file(path: str | Path, model: MorphableModel, camera: PerspectiveCamera) -> torch.Tensor:
    """A pose file → relative head motion (T, 6): row t minus row 0 (module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise GenerationInputError(f"pose file {str(path)!r}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            poses = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise GenerationInputError(f"pose file {str(path)!r}: not a readable .npy ({error})") from None
    elif suffix == ".csv":
        poses = _read_pose_csv(path)
    elif suffix in VIDEO_SUFFIXES:
        poses = _poses_from_video(path, model, camera)
    else:
        raise GenerationInputError(
            f"pose file {str(path)!r}: unsupported type {suffix or '(none)'}; use .npy, .csv or a video "
            f"({', '.join(VIDEO_SUFFIXES)})"
        )
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != POSE_DIM or len(poses) == 0:
        raise GenerationInputError(f"pose file {str(path)!r}: expected shape (T, 6), got {poses.shape}")
    if not np.isfinite(poses).all():
        raise GenerationInputError(f"pose file {str(path)!r}: contains NaN or infinite values")
    poses = torch.from_numpy(poses).float()
    return poses - poses[:1]


def _read_pose_csv(path: Path) -> np.ndarray:
    """Comma-separated rows of numbers; a first line that is not numeric is taken as a header."""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if lines and not _is_numeric_row(lines[0]):
        lines = lines[1:]
    if not all(_is_numeric_row(line) for line in lines):
        raise GenerationInputError(f"pose file {str(path)!r}: not a numeric CSV of 6 columns")
    try:
        return np.array([[float(value) for value in line.split(",")] for line in lines], dtype=np.float64)
    except ValueError:
        raise GenerationInputError(f"pose file {str(path)!r}: rows have different numbers of columns") from None


def _is_numeric_row(line: str) -> bool:
    try:
        [float(value) for value in line.split(",")]
    except ValueError:
        return False
    return True


def _poses_from_video(path: Path, model: MorphableModel, camera: PerspectiveCamera) -> np.ndarray:
    """Per-frame head poses of a talking-head video (module docstring)."""
    landmarks = []
    tracker = FaceMeshDetector(video=True, max_faces=2, refine=True)  # the largest is used
    try:
        for frame in iter_video_frames(path, fps=FPS):
            faces = tracker.faces(frame)
            if not faces:
                where = "no face found" if not landmarks else f"the face is lost at frame {len(landmarks)}"
                raise GenerationInputError(f"pose video {str(path)!r}: {where}")
            landmarks.append(faces[0])
    except VideoError as error:
        raise GenerationInputError(str(error)) from None
    finally:
        tracker.close()
    if not landmarks:
        raise GenerationInputError(f"pose video {str(path)!r}: no frames")
    return fit_tracked_clip(model, np.stack(landmarks), camera).fit.pose.double().numpy()


def centre_on(poses: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """(T, 6) poses shifted by one constant so that their mean over the T frames is ``pose`` (6,): the motion
    frame to frame and its spread are kept, the trajectory's offset from ``pose`` is removed."""
    return poses - poses.mean(dim=0) + pose


def follow(relative: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(T', 6) → (num_frames, 6): the sequence played forwards and backwards until it is long enough."""
    if len(relative) == 1:
        return relative.expand(num_frames, -1)
    cycle = torch.cat((relative, relative.flip(0)[1:-1]))
    repeats = -(-num_frames // len(cycle))
    return cycle.repeat(repeats, 1)[:num_frames]
