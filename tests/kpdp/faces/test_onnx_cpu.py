"""ONNX Runtime for the project's own networks on the CPU: the same outputs as torch (tested
tolerance), the exported graph cached and re-exported when damaged, and a switch back to torch."""
import numpy as np
import pytest
import torch

from kpdp.faces.onnx_cpu import ENV, OrtModule, wanted
from kpdp.inpaint import SIZE, FaceInpainter


def test_switch(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert wanted("cpu")
    assert not wanted("cuda:0")
    monkeypatch.setenv(ENV, "torch")
    assert not wanted("cpu")
    monkeypatch.setenv(ENV, "tensorrt")
    with pytest.raises(ValueError, match="torch"):
        wanted("cpu")


def test_graph_cached_reused_and_re_exported_when_damaged(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 2, 1)).eval()
    x = torch.randn(3, 3, 16, 16)
    first = OrtModule(net, (x[:1],), key="net", directory=tmp_path)
    assert not first.path.exists()  # nothing exported before the first call
    with torch.no_grad():
        first(x[:1])
    stamp = first.path.stat().st_mtime_ns
    again = OrtModule(net, (x[:1],), key="net", directory=tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(again(x), net(x), atol=1e-5, rtol=1e-5)  # any batch size
    assert again.path == first.path and again.path.stat().st_mtime_ns == stamp  # read, not exported again
    first.path.write_bytes(b"not an onnx graph")
    mended = OrtModule(net, (x[:1],), key="net", directory=tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(mended(x), net(x), atol=1e-5, rtol=1e-5)
    assert not list(tmp_path.glob("*.tmp"))


def _faces(sample, sample_landmarks, k):
    from kpdp.datasets import load_image

    i = list(sample_landmarks["image_id"]).index(sample[k].image_id)
    return load_image(sample[k].path), sample_landmarks["landmarks"][i]


def test_generator_through_onnx_draws_the_torch_faces(sample, sample_landmarks, monkeypatch, tmp_path):
    """Max difference 1 level on a few pixels (the same float outputs to ~1e-6, rounded to uint8),
    on real faces of the sample; the version says which engine drew them."""
    monkeypatch.setenv("KPDP_ONNX_CACHE", str(tmp_path))
    monkeypatch.delenv(ENV, raising=False)
    fast = FaceInpainter("dense68", mask_kind="ellipse")
    monkeypatch.setenv(ENV, "torch")
    reference = FaceInpainter("dense68", mask_kind="ellipse")
    assert fast.engine_tag == "|ort" and reference.engine_tag == ""
    changed = 0
    for k in range(4):
        image, lm = _faces(sample, sample_landmarks, k)
        target = lm + np.random.default_rng(k).normal(0, 1.5, lm.shape)
        a, mask_a = fast.inpaint(image, lm, target, seed=k)
        b, mask_b = reference.inpaint(image, lm, target, seed=k)
        np.testing.assert_array_equal(mask_a, mask_b)
        diff = np.abs(a.astype(int) - b.astype(int))
        assert diff.max() <= 1
        changed += int((diff > 0).sum())
    assert changed < 0.001 * 4 * image.size
    # the raw outputs, before rounding
    x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    m = (torch.rand(2, 1, SIZE, SIZE) > 0.5).float()
    c = torch.rand(2, 9, SIZE, SIZE)
    z = torch.randn(2, 1, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(fast._run(x, m, c, z), reference.G(x, m, c, z), atol=1e-4, rtol=0)


def test_spatial_graph_takes_any_height_and_width(tmp_path):
    """A fully convolutional network (MTCNN's proposal stage) runs on every level of an image pyramid."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.MaxPool2d(2, 2, ceil_mode=True)).eval()
    run = OrtModule(net, (torch.zeros(1, 3, 12, 12),), key="fcn", directory=tmp_path, spatial=True)
    for h, w in ((12, 12), (31, 47), (250, 181)):
        x = torch.randn(2, 3, h, w)
        with torch.no_grad():
            torch.testing.assert_close(run(x), net(x), atol=1e-5, rtol=1e-5)
    fixed = OrtModule(net, (torch.zeros(1, 3, 12, 12),), key="fcn", directory=tmp_path)
    assert fixed.path != run.path  # a fixed-size graph of the same key is another file
    with pytest.raises(Exception), torch.no_grad():
        fixed(torch.randn(1, 3, 31, 47))


def test_mtcnn_through_onnx_finds_the_torch_boxes(sample, monkeypatch, tmp_path):
    """The same faces, boxes and 5 points as facenet-pytorch's torch MTCNN, to 1e-3 px, on the sample's
    images one at a time and as a batch; the version says which engine ran."""
    from kpdp.datasets import load_image
    from kpdp.faces.detectors import MTCNNDetector

    monkeypatch.setenv("KPDP_ONNX_CACHE", str(tmp_path))
    monkeypatch.delenv(ENV, raising=False)
    fast = MTCNNDetector()
    monkeypatch.setenv(ENV, "torch")
    reference = MTCNNDetector()
    assert fast.version == reference.version + "-ort"
    images = [load_image(sample[k].path) for k in range(6)]
    images.append(np.ascontiguousarray(images[0][:, ::-1][20:, :200]))  # another size: other pyramid levels
    for got, want in zip(fast.detect_batch(images[:6]) + [fast.detect(images[6])],
                         reference.detect_batch(images[:6]) + [reference.detect(images[6])]):
        assert len(got) == len(want) > 0
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.box, w.box, atol=1e-3)
            np.testing.assert_allclose(g.extra["points5"], w.extra["points5"], atol=1e-3)
            assert abs(g.score - w.score) < 1e-5
