import numpy as np
import pytest

from bench import methods as method_registry
from kpdp.method import face_region

BASELINES = ["original", "blur", "blur-strong", "pixelate-8", "pixelate-16", "mask", "mask-noise", "dppix",
             "deepprivacy"]


def _make(name):
    return method_registry.create(name, eps=1.0)


@pytest.mark.parametrize("name", BASELINES)
def test_pixels_outside_the_face_region_are_bit_identical(name, face_image):
    image, face = face_image
    out = _make(name).anonymize(image, [face], seed=3)
    assert out.image.shape == image.shape and out.image.dtype == np.uint8
    outside = out.region == 0
    assert np.array_equal(out.image[outside], image[outside])
    if name != "original":
        assert not np.array_equal(out.image, image)
        if name != "deepprivacy":  # the generator works in its own aligned mask
            assert np.array_equal(out.region, face_region(face, image.shape, "box"))


@pytest.mark.parametrize("name", BASELINES)
def test_deterministic_for_a_seed(name, face_image):
    image, face = face_image
    m = _make(name)
    a, b = m.anonymize(image, [face], seed=5).image, m.anonymize(image, [face], seed=5).image
    assert np.array_equal(a, b)
    if name in ("dppix", "mask-noise"):
        assert not np.array_equal(a, m.anonymize(image, [face], seed=6).image)


def test_several_faces_are_each_anonymised(face_image):
    from kpdp.faces.geometry import Face

    image, face = face_image
    two = np.concatenate([image, image], axis=1)
    w = image.shape[1]
    faces = [face, Face(face.box + [w, 0, w, 0], face.landmarks + [w, 0])]
    out = _make("pixelate-8").anonymize(two, faces, seed=0)
    assert not np.array_equal(out.image[:, :w], image) and not np.array_equal(out.image[:, w:], image)


def test_landmark_region_option(face_image):
    image, face = face_image
    m = method_registry.method_class("blur")(region="landmarks")
    out = m.anonymize(image, [face])
    assert out.region.sum() < face_region(face, image.shape, "box").sum()
    with pytest.raises(ValueError, match="valid: box, landmarks"):
        method_registry.method_class("blur")(region="ellipse")


def test_methods_without_eps_reject_nothing_and_dppix_needs_eps():
    with pytest.raises(ValueError, match="needs eps"):
        method_registry.method_class("dppix")()
    with pytest.raises(ValueError, match="ε must be > 0"):
        method_registry.create("dppix", eps=0)


def test_unknown_method_lists_available():
    with pytest.raises(method_registry.UnknownMethod, match="valid: .*blur"):
        method_registry.method_class("nope")
