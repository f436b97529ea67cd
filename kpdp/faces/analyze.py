"""Find *the* face of a photo and its 68 landmarks, the way every part of the project does it.

Face photo data sets label one person per image; when a detector finds several faces, the
labelled one is the face nearest the image centre (LFW's own convention), weighted by size.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kpdp.faces import get_detector, get_landmarker

from .geometry import Face, landmark_box


class NoFaceError(ValueError):
    """No detector found a face in the image."""


def primary_index(faces: list[Face], shape: tuple[int, int]) -> int:
    h, w = shape[:2]
    centre = np.array([w / 2, h / 2])

    def cost(f: Face) -> float:
        c = np.array([(f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2])
        return float(np.linalg.norm(c - centre) / max(h, w) - 0.5 * f.size / max(h, w))

    return int(np.argmin([cost(f) for f in faces]))


@dataclass
class FaceFinder:
    """Detector(s) + landmark model. Detectors are tried in order until one finds a face."""

    detectors: tuple = ("dlib-hog", "mtcnn")
    landmarker: str = "dlib68"
    device: str = "cpu"
    detector_device: str | None = None  # None: `device`; a caller may keep detectors off a shared GPU

    def __post_init__(self):
        self._detectors = [get_detector(d, self.detector_device or self.device) for d in self.detectors]
        self._landmarker = get_landmarker(self.landmarker, self.device)

    @property
    def version(self) -> str:
        return "+".join(d.version for d in self._detectors) + "|" + self._landmarker.version

    def all_faces(self, image: np.ndarray) -> list[Face]:
        """Every face found by the first detector that finds any, each with landmarks."""
        for det in self._detectors:
            faces = det.detect(image)
            if faces:
                for f in faces:
                    f.landmarks = self._landmarker.landmarks(image, f)
                    f.extra["detector"] = det.name
                return faces
        return []

    def primary(self, image: np.ndarray) -> Face:
        faces = self.all_faces(image)
        if not faces:
            raise NoFaceError(f"no face found by {', '.join(self.detectors)}")
        f = faces[primary_index(faces, image.shape)]
        f.extra["n_faces"] = len(faces)
        return f


def face_from_landmarks(lm68: np.ndarray) -> Face:
    return Face(landmark_box(lm68), np.asarray(lm68, np.float64))
