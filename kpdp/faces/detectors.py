"""Face detectors. Each returns, per image, a list of :class:`Face` sorted by score."""
from __future__ import annotations

import numpy as np

from .geometry import Face
from .registry import DETECTORS, file_sha256, insightface_model_dir, require_file


class Detector:
    name = ""
    version = ""

    def detect(self, image: np.ndarray) -> list[Face]:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Face]]:
        return [self.detect(im) for im in images]


@DETECTORS.register("mtcnn")
class MTCNNDetector(Detector):
    """facenet-pytorch's MTCNN (weights inside the wheel). Batched when images share a size."""

    def __init__(self, device: str = "cpu", min_face_size: int = 20):
        from facenet_pytorch import MTCNN
        import facenet_pytorch

        self.model = MTCNN(keep_all=True, device=device, min_face_size=min_face_size, post_process=False)
        self.version = f"facenet-pytorch-{facenet_pytorch.__version__ if hasattr(facenet_pytorch, '__version__') else '2.5'}"

    def detect_batch(self, images):
        out: list[list[Face]] = [None] * len(images)  # type: ignore[list-item]
        by_shape: dict[tuple, list[int]] = {}
        for i, im in enumerate(images):
            by_shape.setdefault(im.shape, []).append(i)
        for idx in by_shape.values():
            batch = np.stack([images[i] for i in idx])
            boxes, probs, points = self.model.detect(batch, landmarks=True)
            for j, i in enumerate(idx):
                out[i] = _faces(boxes[j], probs[j], points[j])
        return out


def _faces(boxes, probs, points) -> list[Face]:
    # under numpy 2 facenet-pytorch can hand back object arrays or None: normalise here
    if boxes is None or len(boxes) == 0 or (np.asarray(boxes, dtype=object).ndim == 0):
        return []
    boxes = np.asarray(np.stack(list(boxes)), dtype=np.float64)
    probs = np.asarray(list(probs), dtype=np.float64)
    faces = [Face(b, None, float(p), {"points5": np.asarray(pt, np.float64)})
             for b, p, pt in zip(boxes, probs, points)]
    return sorted(faces, key=lambda f: -f.score)


@DETECTORS.register("dlib-hog")
class DlibHOGDetector(Detector):
    """dlib's HOG + linear SVM frontal face detector (no weights file)."""

    def __init__(self, device: str = "cpu", upsample: int = 1):
        import dlib

        self.model = dlib.get_frontal_face_detector()
        self.upsample = upsample
        self.version = f"dlib-{dlib.__version__}-hog-up{upsample}"

    def detect(self, image):
        rects, scores, _ = self.model.run(image, self.upsample, 0.0)
        faces = [Face(np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], np.float64), None, float(s))
                 for r, s in zip(rects, scores)]
        return sorted(faces, key=lambda f: -f.score)


@DETECTORS.register("dlib-cnn")
class DlibCNNDetector(Detector):
    """dlib's MMOD CNN detector (weights from face-recognition-models). Slow on CPU (~1.6 s)."""

    def __init__(self, device: str = "cpu", upsample: int = 0):
        import dlib
        import face_recognition_models as frm

        path = frm.cnn_face_detector_model_location()
        self.model = dlib.cnn_face_detection_model_v1(path)
        self.upsample = upsample
        self.version = f"dlib-{dlib.__version__}-mmod-{file_sha256(path)[:12]}"

    def detect(self, image):
        dets = self.model(image, self.upsample)
        faces = [Face(np.array([d.rect.left(), d.rect.top(), d.rect.right() + 1, d.rect.bottom() + 1], np.float64),
                      None, float(d.confidence)) for d in dets]
        return sorted(faces, key=lambda f: -f.score)


@DETECTORS.register("scrfd", online_only=True)
class SCRFDDetector(Detector):
    """insightface SCRFD-10G from the ``buffalo_l`` pack. Online-only: insightface downloads it."""

    def __init__(self, device: str = "cpu", model_path: str | None = None):
        import os

        path = model_path or os.environ.get("KPDP_SCRFD_MODEL") or insightface_model_dir() / "det_10g.onnx"
        require_file(path, "scrfd", "Run insightface.app.FaceAnalysis('buffalo_l') once with network, "
                                    "or set KPDP_SCRFD_MODEL to a local det_10g.onnx.")
        from insightface.model_zoo import get_model

        self.model = get_model(str(path), providers=["CUDAExecutionProvider" if device.startswith("cuda")
                                                     else "CPUExecutionProvider"])
        self.model.prepare(ctx_id=0 if device.startswith("cuda") else -1, input_size=(640, 640))
        self.version = f"scrfd-{file_sha256(str(path))[:12]}"

    def detect(self, image):
        bgr = np.ascontiguousarray(image[..., ::-1])
        boxes, kps = self.model.detect(bgr)
        return sorted([Face(b[:4].astype(np.float64), None, float(b[4])) for b in boxes], key=lambda f: -f.score)

