"""The torch FaceNet (CASIA-WebFace) is the OpenCV graph's network: same embeddings on real faces,
hash-checked weights, and gradients that reach the pixels."""
import doctest
import shutil

import numpy as np
import pytest
import torch

from kpdp.faces import facenet_torch as ft
from kpdp.faces.geometry import Face

N_FACES = 20  # every 12th of the 256 sample images: 20 people, enough to catch a wrong layer, fast on CPU


@pytest.fixture(scope="module")
def sample_faces(sample, sample_landmarks):
    from kpdp.datasets import load_image

    row = {k: i for i, k in enumerate(sample_landmarks["image_id"])}
    picked = [s for s in sample][::12][:N_FACES]
    images = [load_image(s.path) for s in picked]
    faces = [Face(np.asarray(sample_landmarks["box"][row[s.image_id]], np.float64)) for s in picked]
    return images, faces


@pytest.fixture(scope="module")
def torch_recognizer():
    from kpdp.faces import get_recognizer

    return get_recognizer("facenet-casia-torch")


def test_embeddings_equal_the_opencv_graph(sample_faces, torch_recognizer):
    from kpdp.faces import get_recognizer

    images, faces = sample_faces
    reference = get_recognizer("facenet-casia").embed_batch(images, faces)
    ours = torch_recognizer.embed_batch(images, faces)
    assert ours.shape == (N_FACES, 512) and np.allclose(np.linalg.norm(ours, axis=1), 1)
    cosines = np.einsum("ij,ij->i", ours, reference)
    assert cosines.min() >= 0.9999, f"cosines {np.round(cosines, 5)}"
    # batching must not change an embedding (batch of 20 vs one image)
    assert np.abs(torch_recognizer.embed(images[3], faces[3]) - ours[3]).max() < 1e-5
    assert torch_recognizer.version != get_recognizer("facenet-casia").version  # separate cache entries


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
    from kpdp.faces.recognizers import facenet_crop

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


def test_docstring_examples():
    result = doctest.testmod(ft, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
