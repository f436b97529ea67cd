import subprocess
import sys
import time

import numpy as np
import pytest

from kpdp.faces import BackendUnavailable, backend_names, get_detector, get_landmarker, get_recognizer
from kpdp.faces.analyze import FaceFinder, NoFaceError


@pytest.mark.parametrize("name", ["mtcnn", "dlib-hog", "dlib-cnn"])
def test_offline_detectors_find_the_face(name, face_image):
    from bench.metrics.detection import iou

    image, face = face_image
    faces = get_detector(name).detect(image)
    assert faces and max(iou(f.box, face.box) for f in faces) > 0.4


def test_no_face_and_three_faces(face_image):
    image, _ = face_image
    finder = FaceFinder()
    with pytest.raises(NoFaceError, match="no face"):
        finder.primary(np.full((250, 250, 3), 127, np.uint8))
    three = np.concatenate([image, image, image], axis=1)
    faces = finder.all_faces(three)
    assert len(faces) == 3 and all(f.landmarks.shape == (68, 2) for f in faces)
    assert 250 <= finder.primary(three).box[0] < 500  # the centred one
    gray = np.repeat(image.mean(2, keepdims=True).astype(np.uint8), 3, axis=2)
    assert finder.all_faces(gray)


def test_landmarks_and_recognizers(face_image):
    image, face = face_image
    lm = get_landmarker("dlib68").landmarks(image, face)
    assert lm.shape == (68, 2) and np.abs(lm - face.landmarks).mean() < 3  # a different box: close, not equal
    for name, dim in [("dlib", 128), ("facenet-casia", 512)]:
        rec = get_recognizer(name)
        e = rec.embed_batch([image, image[:, ::-1].copy()], [face, face])
        assert e.shape == (2, dim) and np.allclose(np.linalg.norm(e, axis=1), 1)
        assert rec.version


@pytest.mark.parametrize("kind,name", [("detector", "scrfd"), ("landmarks", "fan"), ("recognizer", "arcface"),
                                       ("recognizer", "facenet-vggface2")])
def test_online_only_backends_fail_fast_and_clearly(kind, name, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for var in ("KPDP_SCRFD_MODEL", "KPDP_ARCFACE_MODEL", "INSIGHTFACE_HOME"):
        monkeypatch.delenv(var, raising=False)
    get = {"detector": get_detector, "landmarks": get_landmarker, "recognizer": get_recognizer}[kind]
    t = time.time()
    with pytest.raises(BackendUnavailable, match=f"'{name}' needs the weights file .*missing"):
        get(name)
    assert time.time() - t < 10
    assert name in backend_names(kind) and name not in backend_names(kind, offline_only=True)


def test_cli_online_backend_exits_nonzero_with_message(tmp_path):
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "TORCH_HOME": str(tmp_path)}
    t = time.time()
    r = subprocess.run([sys.executable, "-m", "bench", "lfw-verify", "--recognizer", "arcface", "--root", str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0 and "w600k_r50.onnx" in r.stderr and "Traceback" not in r.stderr
    assert time.time() - t < 60


def test_unknown_backend_lists_valid():
    with pytest.raises(KeyError, match="valid: .*dlib"):
        get_recognizer("nope")
