import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import kpdp.anonymizer as anon
from kpdp.anonymizer import KPDPAnonymizer


@pytest.fixture(scope="module")
def kpdp1():
    return KPDPAnonymizer(eps=1.0)


def test_changes_only_inside_its_mask_and_follows_the_target(kpdp1, face_image):
    image, face = face_image
    out = kpdp1.anonymize(image, [face], seed=4)
    outside = out.region == 0
    assert np.array_equal(out.image[outside], image[outside])
    assert not np.array_equal(out.image, image) and out.region.sum() > 2000
    assert out.target_landmarks[0].shape == (68, 2) and out.info["noise_mode"] == ["seeded"]
    assert np.array_equal(out.image, kpdp1.anonymize(image, [face], seed=4).image)


def test_eps_infinity_keeps_the_geometry_and_drawn_face_detectable(face_image):
    from bench.metrics.landmarks import nme
    from kpdp.faces import get_landmarker
    from kpdp.faces.analyze import FaceFinder

    image, face = face_image
    out = KPDPAnonymizer(eps=float("inf")).anonymize(image, [face], seed=0)
    np.testing.assert_allclose(out.target_landmarks[0], face.landmarks, atol=1e-8)
    found = FaceFinder().primary(out.image)
    assert nme(get_landmarker("dlib68").landmarks(out.image, found), face.landmarks) < 0.1


def test_api_anonymises_every_face(face_image):
    image, _ = face_image
    two = np.concatenate([image, image], axis=1)
    out = anon.anonymize(two, eps=1.0, seed=1)
    w = image.shape[1]
    assert not np.array_equal(out[:, :w], image) and not np.array_equal(out[:, w:], image)
    blank = np.full((100, 100, 3), 90, np.uint8)
    assert np.array_equal(anon.anonymize(blank, eps=1.0), blank)  # no face: unchanged, no error


def test_cli_anonymize_folder(tmp_path, face_image):
    image, _ = face_image
    (tmp_path / "in").mkdir()
    Image.fromarray(image).save(tmp_path / "in" / "a.jpg")
    (tmp_path / "in" / "broken.jpg").write_text("nope")
    r = subprocess.run([sys.executable, "-m", "kpdp", "anonymize", str(tmp_path / "in"), str(tmp_path / "out"),
                        "--eps", "1", "--seed", "3"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "a.png").exists() and "seeded" in r.stdout
    report = (tmp_path / "out" / "anonymize_report.tsv").read_text()
    assert "broken.jpg\tskipped\tnot a readable image" in report
    r = subprocess.run([sys.executable, "-m", "kpdp", "anonymize", str(tmp_path / "in"), str(tmp_path / "o2"),
                        "--eps", "-1"], capture_output=True, text=True)
    assert r.returncode == 2 and "ε must be > 0" in r.stderr
