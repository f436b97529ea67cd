"""The per-image seed and the one call that anonymises with it (runs, attackers' regeneration and
reports all use it, so a regenerated image is the measured one)."""
import numpy as np

from baselines.dppix import DPPix
from bench.measure.seeds import anonymise, derive_seed
from kpdp.faces.geometry import Face


def _image_and_faces():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    return image, [Face(box=np.array([20.0, 20.0, 76.0, 76.0]), score=1.0)]


def test_anonymise_reproduces_the_runs_output_whatever_the_order():
    method = DPPix(eps=1.0)
    image, faces = _image_and_faces()
    first = anonymise(method, image, faces, 0, "lfw", "dppix", 1.0, "A/A_0001").image
    anonymise(method, image, faces, 0, "lfw", "dppix", 1.0, "B/B_0001")  # another image in between
    again = anonymise(method, image, faces, 0, "lfw", "dppix", 1.0, "A/A_0001").image
    direct = method.anonymize(image, faces, seed=derive_seed(0, "lfw", "dppix", 1.0, "A/A_0001")).image
    assert np.array_equal(first, again) and np.array_equal(first, direct)


def test_each_cell_and_image_gets_its_own_noise():
    method = DPPix(eps=1.0)
    image, faces = _image_and_faces()
    base = anonymise(method, image, faces, 0, "lfw", "dppix", 1.0, "A/A_0001").image
    for other in [(1, "lfw", "A/A_0001"), (0, "lfw-gallery", "A/A_0001"), (0, "lfw", "A/A_0002")]:
        seed, dataset, image_id = other
        assert not np.array_equal(base, anonymise(method, image, faces, seed, dataset, "dppix", 1.0, image_id).image)
