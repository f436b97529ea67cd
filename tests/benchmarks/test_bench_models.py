"""pytest-benchmark suite: per-method and per-backend cost on the embedded sample (CPU, and CUDA
for the generators when a GPU is visible). Not part of the default test command::

    python -m pytest tests/benchmarks --benchmark-enable --benchmark-columns=mean,stddev,rounds

Each benchmark processes the same 16 images per round, so ``mean`` / 16 is the time per image.
``inception[batch-16]`` vs ``inception[batch-1]`` is the measured case for batching across images.
"""
import pytest
import torch

N = 16


@pytest.fixture(scope="module")
def items():
    from . import sample_faces

    return [(image, [face]) for image, face, _ in sample_faces(N)]


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["blur", "pixelate-8", "dppix", "deepprivacy", "kpdp"])
def test_method(benchmark, items, name, device):
    from bench import methods as method_registry
    m = method_registry.create(name, 1.0, device)
    m.anonymize(*items[0], seed=0)

    def run():
        for k, (image, faces) in enumerate(items):
            m.anonymize(image, faces, seed=k)
        if device == "cuda":
            torch.cuda.synchronize()

    benchmark.pedantic(run, rounds=3, warmup_rounds=0)


@pytest.mark.parametrize("name", ["mtcnn", "dlib-hog"])
def test_detector(benchmark, items, name):
    from kpdp.faces import get_detector

    det = get_detector(name)
    faces = benchmark.pedantic(lambda: [det.detect(im) for im, _ in items], rounds=3)
    assert sum(len(f) > 0 for f in faces) >= N - 1


@pytest.mark.parametrize("name", ["dlib", "dlib-cpp", "facenet-casia"])
def test_recognizer(benchmark, items, name):
    from kpdp.faces import get_recognizer

    rec = get_recognizer(name)
    images, faces = [im for im, _ in items], [f[0] for _, f in items]
    emb = benchmark.pedantic(lambda: rec.embed_batch(images, faces), rounds=3)
    assert emb.shape[0] == N


def test_landmarks(benchmark, items):
    from kpdp.faces import get_landmarker

    lm = get_landmarker("dlib68")
    benchmark.pedantic(lambda: [lm.landmarks(im, f[0]) for im, f in items], rounds=3)


@pytest.mark.parametrize("batch", [1, 16])
def test_inception(benchmark, items, batch):
    from bench.metrics.fid import inception_features

    images = [im for im, _ in items]
    feats = benchmark.pedantic(lambda: inception_features(images, batch=batch), rounds=3)
    assert feats.shape == (N, 2048)
