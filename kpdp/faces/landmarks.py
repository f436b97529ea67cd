"""68-point iBUG landmark models. Each takes an image and a face box, returns ``(68, 2)`` (x, y)."""
from __future__ import annotations

import numpy as np

from .geometry import Face
from .registry import LANDMARKERS, dlib_model_files, file_sha256, require_file, torch_hub_checkpoints


class Landmarker:
    name = ""
    version = ""

    def landmarks(self, image: np.ndarray, face: Face) -> np.ndarray:
        raise NotImplementedError

    def landmarks_batch(self, images, faces) -> list[np.ndarray]:
        return [self.landmarks(im, f) for im, f in zip(images, faces)]


@LANDMARKERS.register("dlib68")
class Dlib68(Landmarker):
    """dlib ``shape_predictor_68_face_landmarks`` (iBUG 300-W; non-commercial licence), ~1 ms.

    It is trained on boxes from dlib's HOG detector: boxes from other detectors work but give
    slightly different points; the benchmark always uses the box it records beside the points.
    """

    def __init__(self, device: str = "cpu"):
        import dlib
        frm = dlib_model_files()

        path = frm.pose_predictor_model_location()
        self._dlib = dlib
        self.model = dlib.shape_predictor(path)
        self.version = f"dlib-{dlib.__version__}-sp68-{file_sha256(path)[:12]}"

    def landmarks(self, image, face):
        x0, y0, x1, y1 = (int(round(v)) for v in face.box)
        shape = self.model(image, self._dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


@LANDMARKERS.register("fan", online_only=True)
class FAN(Landmarker):
    """face-alignment's 2D FAN-4. Online-only: face-alignment downloads its weights."""

    WEIGHTS = "2DFAN4-cd938726ad.zip"

    def __init__(self, device: str = "cpu"):
        require_file(torch_hub_checkpoints() / self.WEIGHTS, "fan",
                     "Run face_alignment.FaceAlignment(LandmarksType.TWO_D) once with network access")
        import face_alignment

        self.model = face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, device=device,
                                                  face_detector="blazeface")
        self.version = f"face-alignment-{face_alignment.__version__}"

    def landmarks(self, image, face):
        pts = self.model.get_landmarks_from_image(image, detected_faces=[list(face.box) + [face.score]])
        if not pts:
            raise ValueError("FAN returned no landmarks")
        return np.asarray(pts[0][:, :2], dtype=np.float64)

