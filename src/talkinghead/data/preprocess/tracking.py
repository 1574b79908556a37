"""Face tracking (MediaPipe FaceMesh, 478 landmarks) and the segmenter that turns a video into clip spans.

"One speaker per clip" is decided per frame and per frame pair:

* a frame is *usable* when FaceMesh finds exactly one face whose landmark box is at least
  :attr:`TrackingConfig.min_face` pixels on its longer side; a second face counts only when its box is at
  least :attr:`TrackingConfig.second_face_ratio` of the main face's (a small face in the background does
  not make a second speaker);
* consecutive usable frames belong to one segment unless a *scene cut* (mean absolute difference of 32²
  grey thumbnails above :attr:`TrackingConfig.cut_threshold`) or a *large jump* (the face centre moves
  more than :attr:`TrackingConfig.max_jump` of the face size in one frame, i.e. the track switched) lies
  between them;
* a segment in which the face travels too far for one fixed crop box is split
  (:func:`~talkinghead.data.preprocess.crop.split_for_fixed_box`, :attr:`TrackingConfig.max_box_growth`);
* segments shorter than :attr:`TrackingConfig.min_frames` are rejected; longer than
  :attr:`TrackingConfig.max_frames` are split into equal parts.

Every rejected frame range gets one :class:`Rejection` row with its reason.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from talkinghead.conventions import MIN_FACE_SIZE
from talkinghead.data.preprocess.crop import split_for_fixed_box
from talkinghead.face.detection import FaceMeshDetector

NO_FACE = "no face"
SEVERAL_FACES = "several faces"
SMALL_FACE = "face too small"
TOO_SHORT = "segment too short"


@dataclass(frozen=True)
class TrackingConfig:
    """Thresholds of the tracker and segmenter (values chosen for HDTF/VoxCeleb).

    ``min_face`` 64 px keeps VoxCeleb's 224p faces and rejects tiny background faces; ``cut_threshold``
    0.12 (of full scale) is far above talking-head frame-to-frame change (< 0.03) and below a cut
    between two shots (> 0.2 typically); ``max_jump`` 0.25 of the face size per frame (6 face sizes per
    second at 25 fps) is beyond any head motion; clips of 1–30 s.
    """

    min_face: float = float(MIN_FACE_SIZE)
    second_face_ratio: float = 0.5
    cut_threshold: float = 0.12
    max_jump: float = 0.25
    max_box_growth: float = 1.25
    min_frames: int = 25
    max_frames: int = 750
    detection_confidence: float = 0.5
    tracking_confidence: float = 0.5


@dataclass
class Observation:
    """One frame: the main face's landmarks (478, 3) as (x, y, z·W) pixels, or why the frame is unusable."""

    landmarks: np.ndarray | None
    problem: str | None
    thumbnail: np.ndarray


@dataclass(frozen=True)
class Rejection:
    """A rejected frame range ``[start, end)`` of a video (both ``None``: the whole video) and why."""

    start: int | None
    end: int | None
    reason: str


@dataclass
class Segment:
    """Frames ``[start, start + len(landmarks))`` of one face, ready to be cropped and fitted."""

    start: int
    landmarks: np.ndarray  # (T, 478, 3) source pixels

    @property
    def end(self) -> int:
        return self.start + len(self.landmarks)


def _box_side(points: np.ndarray) -> float:
    return float(np.ptp(points[:, :2], axis=0).max())


class FaceTracker:
    """MediaPipe FaceMesh in video mode (tracking between frames), iris refinement on: 478 landmarks; the main
    face is the largest (:class:`~talkinghead.face.detection.FaceMeshDetector`).

    Make one per video: the graph keeps the previous frame's face as the next frame's region of interest.
    """

    def __init__(self, config: TrackingConfig):
        self.config = config
        self._mesh = FaceMeshDetector(
            video=True,
            max_faces=2,
            refine=True,
            detection_confidence=config.detection_confidence,
            tracking_confidence=config.tracking_confidence,
        )

    def observe(self, frame: np.ndarray) -> Observation:
        """Landmarks of the main (largest) face of an RGB uint8 frame (H, W, 3), or the problem."""
        frame = np.ascontiguousarray(frame)
        thumbnail = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (32, 32), interpolation=cv2.INTER_AREA)
        faces = self._mesh.faces(frame)
        if not faces:
            return Observation(None, NO_FACE, thumbnail)
        main = faces[0]
        if len(faces) > 1 and _box_side(faces[1]) >= self.config.second_face_ratio * _box_side(main):
            return Observation(None, SEVERAL_FACES, thumbnail)
        if _box_side(main) < self.config.min_face:
            return Observation(None, f"{SMALL_FACE} (< {self.config.min_face:g} px)", thumbnail)
        return Observation(main, None, thumbnail)

    def close(self) -> None:
        self._mesh.close()


class Segmenter:
    """Feed :meth:`push` every frame's observation in order; it yields finished segments (module doc).

    Rejections accumulate in :attr:`rejections`; call :meth:`finish` after the last frame.
    """

    def __init__(self, config: TrackingConfig):
        self.config = config
        self.rejections: list[Rejection] = []
        self._landmarks: list[np.ndarray] = []
        self._start = 0
        self._bad: tuple[int, str] | None = None  # open run of unusable frames: (start, reason)
        self._previous: Observation | None = None
        self._index = 0

    def _breaks(self, observation: Observation) -> bool:
        previous = self._previous
        if previous is None or previous.landmarks is None or observation.landmarks is None:
            return False
        change = np.abs(observation.thumbnail.astype(np.float32) - previous.thumbnail).mean() / 255.0
        if change > self.config.cut_threshold:
            return True
        size = _box_side(previous.landmarks)
        shift = np.linalg.norm(observation.landmarks[:, :2].mean(0) - previous.landmarks[:, :2].mean(0))
        return bool(shift > self.config.max_jump * size)

    def _close_bad(self, end: int) -> None:
        if self._bad is not None:
            self.rejections.append(Rejection(self._bad[0], end, self._bad[1]))
            self._bad = None

    def _close_segment(self) -> Iterator[Segment]:
        landmarks, start = self._landmarks, self._start
        self._landmarks = []
        if not landmarks:
            return
        stacked = np.stack(landmarks)
        for first, last in split_for_fixed_box(stacked, self.config.max_box_growth):
            yield from self._clips(start + first, stacked[first:last])

    def _clips(self, start: int, landmarks: np.ndarray) -> Iterator[Segment]:
        """One fixed-box span: rejected when too short, else split into equal parts of at most max_frames."""
        if len(landmarks) < self.config.min_frames:
            self.rejections.append(
                Rejection(
                    start, start + len(landmarks), f"{TOO_SHORT} ({len(landmarks)} < {self.config.min_frames} frames)"
                )
            )
            return
        parts = -(-len(landmarks) // self.config.max_frames)
        bounds = np.linspace(0, len(landmarks), parts + 1).round().astype(int)
        for first, last in zip(bounds[:-1], bounds[1:], strict=True):
            yield Segment(start + int(first), landmarks[first:last])

    def push(self, observation: Observation) -> Iterator[Segment]:
        """Add the next frame; yields the segment it closes, if any."""
        index = self._index
        self._index += 1
        if observation.landmarks is None:
            yield from self._close_segment()
            if self._bad is not None and self._bad[1] != observation.problem:
                self._close_bad(index)
            if self._bad is None:
                self._bad = (index, observation.problem)
        else:
            self._close_bad(index)
            if self._breaks(observation):
                yield from self._close_segment()
            if not self._landmarks:
                self._start = index
            self._landmarks.append(observation.landmarks)
        self._previous = observation

    def finish(self) -> Iterator[Segment]:
        """Close what is open after the last frame."""
        self._close_bad(self._index)
        yield from self._close_segment()
