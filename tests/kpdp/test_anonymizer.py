import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import kpdp.anonymizer as anon
from kpdp.anonymizer import KPDPAnonymizer
from kpdp.faces.analyze import NoFaceError


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


def test_v3_with_poisson_paste_changes_only_its_mask_and_not_the_privatised_geometry(kpdp1, face_image):
    """kpdp[generator=v3,blend=poisson]: the same release of the geometry as v2 (the generator and the
    paste do not touch ε), another face, pixels outside the mask untouched, a seam no larger."""
    from bench.metrics.seam import seam_step

    image, face = face_image
    v3 = KPDPAnonymizer(eps=1.0, generator="v3", blend="poisson")
    a, b = kpdp1.anonymize(image, [face], seed=4), v3.anonymize(image, [face], seed=4)
    assert np.array_equal(a.target_landmarks[0], b.target_landmarks[0])
    assert np.array_equal(b.image[b.region == 0], image[b.region == 0])
    assert np.abs(a.image.astype(int) - b.image.astype(int)).mean() > 3
    assert v3.version != kpdp1.version and "|b:poisson" in v3.version
    assert seam_step(image, b.image) < seam_step(image, a.image) + 1.0


def test_tone_transfer_recolours_only_the_drawn_face_towards_the_original(kpdp1, face_image):
    """kpdp[tone=skin]: the same release and mask as without it, the skin tone (ITA) of the drawn
    face closer to the original's, an unknown tone named with the known ones."""
    from bench.metrics.skin_tone import ita_change

    image, face = face_image
    toned = KPDPAnonymizer(eps=1.0, tone="skin")
    a, b = kpdp1.anonymize(image, [face], seed=4), toned.anonymize(image, [face], seed=4)
    assert np.array_equal(a.target_landmarks[0], b.target_landmarks[0]) and np.array_equal(a.region, b.region)
    assert np.array_equal(b.image[b.region == 0], image[b.region == 0])
    assert abs(ita_change(image, b.image, face.landmarks)[1]) < abs(ita_change(image, a.image, face.landmarks)[1])
    assert "|t:skin" in toned.version and "|t:" not in kpdp1.version
    with pytest.raises(ValueError, match="skin"):
        KPDPAnonymizer(eps=1.0, tone="warm")


def test_tone_with_poisson_paste_gives_the_drawn_face_the_originals_skin_colour(face_image):
    """kpdp[blend=poisson,tone=skin]: the shift is made after the gradient-domain paste (which
    re-levels the face from the mask's edge), so the pasted face's inner-face median colour is the
    original's to a few CIELAB levels; a shift made before the paste left it 10 levels off on this face."""
    import cv2

    from kpdp.faces.tone import inner_face

    image, face = face_image
    v3 = KPDPAnonymizer(eps=1.0, generator="v3", blend="poisson")
    toned = KPDPAnonymizer(eps=1.0, generator="v3", blend="poisson", tone="skin")
    a, b = v3.anonymize(image, [face], seed=4), toned.anonymize(image, [face], seed=4)
    assert np.array_equal(a.region, b.region) and np.array_equal(b.image[b.region == 0], image[b.region == 0])

    def skin(img, lm):
        return np.median(cv2.cvtColor(img, cv2.COLOR_RGB2LAB)[inner_face(lm, img.shape)].astype(float), 0)

    target = skin(image, face.landmarks)
    before, after = skin(a.image, a.target_landmarks[0]), skin(b.image, b.target_landmarks[0])
    assert np.abs(after - target).max() <= 2.0, (after, target)
    assert np.abs(before - target).max() > 4.0  # the untoned face is measurably off, else this proves nothing
    assert toned.version.count("|t:skin@pasted") == 1 and "|b:poisson" in toned.version


def test_original_mouth_is_moved_onto_the_drawn_one_and_nothing_else_changes(face_image):
    """kpdp[mouth=original]: the same release of the geometry and the same mask; inside the drawn
    mouth's mask the pixels are closer to the original's mouth moved there than the drawn mouth was."""
    import cv2

    from kpdp.faces.geometry import umeyama
    from kpdp.faces.mouth import MOUTH, mouth_mask

    image, face = face_image
    drawn = KPDPAnonymizer(eps=1.0, generator="v3", blend="poisson")
    kept = KPDPAnonymizer(eps=1.0, generator="v3", blend="poisson", mouth="original")
    a, b = drawn.anonymize(image, [face], seed=4), kept.anonymize(image, [face], seed=4)
    assert np.array_equal(a.target_landmarks[0], b.target_landmarks[0]) and np.array_equal(a.region, b.region)
    assert np.array_equal(b.image[b.region == 0], image[b.region == 0])
    target = a.target_landmarks[0]
    lips = mouth_mask(target, image.shape).astype(bool) & cv2.erode(a.region, np.ones((9, 9), np.uint8)).astype(bool)
    h, w = image.shape[:2]
    moved = cv2.warpAffine(image, umeyama(face.landmarks[MOUTH], target[MOUTH]), (w, h))

    def error(img):  # after each image's mean colour on the lips: the gradient-domain paste re-levels it
        d = img[lips].astype(float) - moved[lips].astype(float)
        return np.abs(d - d.mean(0)).mean()

    err_drawn, err_kept = error(a.image), error(b.image)
    assert err_kept < 0.75 * err_drawn, (err_kept, err_drawn)  # 15.5 against 24.3 here; resampled twice
    assert "|m:original" in kept.version and "|m:" not in drawn.version
    with pytest.raises(ValueError, match="drawn, original"):
        KPDPAnonymizer(eps=1.0, mouth="smile")


def test_a_hand_in_front_of_the_face_is_kept_with_hands_keep(sample, sample_landmarks):
    """kpdp[hands=keep]: the hand over the mouth (kpdp.faces.hands) stays the photo's, the face around
    it is drawn as with hands=paint, which draws a face through the hand."""
    from kpdp.datasets import load_image
    from kpdp.faces.analyze import face_from_landmarks
    from kpdp.faces.hands import HandFinder

    image_id = "Celine_Dion/Celine_Dion_0003"
    image = load_image(sample.root / "lfw-deepfunneled" / f"{image_id}.jpg")
    face = face_from_landmarks(sample_landmarks["landmarks"][list(sample_landmarks["image_id"]).index(image_id)])
    kw = dict(eps=1.0, generator="v3", blend="poisson", tone="skin")
    painted = KPDPAnonymizer(**kw).anonymize(image, [face], seed=3)
    keeper = KPDPAnonymizer(hands="keep", **kw)
    kept = keeper.anonymize(image, [face], seed=3)
    hand = HandFinder().mask(image).astype(bool) & (painted.region > 0)  # the hand where the face is drawn
    assert hand.sum() > 1000

    def changed(out):
        return (np.abs(out.image.astype(int) - image.astype(int)).max(-1) > 8)[hand].mean()

    assert changed(painted) > 0.5 and changed(kept) < 0.05, (changed(painted), changed(kept))
    face_only = (kept.region > 0) & ~hand
    assert (np.abs(kept.image.astype(int) - image.astype(int)).max(-1) > 8)[face_only].mean() > 0.5
    assert np.array_equal(kept.target_landmarks[0], painted.target_landmarks[0])
    assert "|h:keep" in keeper.version
    with pytest.raises(ValueError, match="paint, keep"):
        KPDPAnonymizer(eps=1.0, hands="hide")


def test_eps_infinity_keeps_the_geometry_and_drawn_face_detectable(face_image):
    from bench.metrics.landmarks import nme
    from kpdp.faces import get_landmarker
    from kpdp.faces.analyze import FaceFinder
    image, face = face_image
    out = KPDPAnonymizer(eps=float("inf"), residual="full").anonymize(image, [face], seed=0)
    np.testing.assert_allclose(out.target_landmarks[0], face.landmarks, atol=1e-8)
    # the default keeps only part of the residual (kpdp.residual), even at ε = ∞
    default = KPDPAnonymizer(eps=float("inf")).anonymize(image, [face], seed=0)
    assert not np.allclose(default.target_landmarks[0], face.landmarks, atol=0.1)
    found = FaceFinder().primary(out.image)
    assert nme(get_landmarker("dlib68").landmarks(out.image, found), face.landmarks) < 0.1


def test_api_anonymises_every_face(face_image):
    image, _ = face_image
    two = np.concatenate([image, image], axis=1)
    out = anon.anonymize(two, eps=1.0, seed=1)
    w = image.shape[1]
    assert not np.array_equal(out[:, :w], image) and not np.array_equal(out[:, w:], image)
    blank = np.full((100, 100, 3), 90, np.uint8)
    with pytest.raises(NoFaceError):  # fails closed: no face found is an error, never a copy
        anon.anonymize(blank, eps=1.0)
    assert np.array_equal(anon.anonymize(blank, eps=1.0, no_face="copy"), blank)
    noisy = np.random.default_rng(0).integers(0, 255, (100, 100, 3), dtype=np.uint8)
    assert not np.array_equal(anon.anonymize(noisy, eps=1.0, no_face="blur-all"), noisy)


def _two_faces(sample):
    """A face, and a second one of ~25 px in the background (which dlib-HOG alone misses)."""
    import cv2

    from kpdp.datasets import load_image

    canvas = np.full((300, 480, 3), 110, np.uint8)
    canvas[25:275, 0:250] = load_image(sample[0].path)
    canvas[40:110, 380:450] = cv2.resize(load_image(sample[1].path), (70, 70), interpolation=cv2.INTER_AREA)
    return canvas


def test_cli_anonymize_folder_fails_closed(tmp_path, face_image, sample):
    image, _ = face_image
    (tmp_path / "in").mkdir()
    Image.fromarray(image).save(tmp_path / "in" / "a.jpg")
    two = _two_faces(sample)
    Image.fromarray(two).save(tmp_path / "in" / "two.png")
    blank = np.full((200, 200, 3), 90, np.uint8)
    Image.fromarray(blank).save(tmp_path / "in" / "blank.png")
    (tmp_path / "in" / "broken.jpg").write_text("nope")
    r = subprocess.run([sys.executable, "-m", "kpdp", "anonymize", str(tmp_path / "in"), str(tmp_path / "out"),
                        "--eps", "1", "--seed", "3"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "a.png").exists() and "seeded" in r.stdout
    assert not (tmp_path / "out" / "blank.png").exists(), "an image with no face found must not be written as is"
    assert "no face was found in 1 image" in r.stderr
    report = (tmp_path / "out" / "anonymize_report.tsv").read_text()
    assert "broken.jpg\t-\tskipped\tnot a readable image" in report
    assert "blank.png\t0\tnot written\tno face found" in report
    assert "two.png\t2\tanonymised" in report and "a.jpg\t1\tanonymised" in report  # faces per image
    out = np.asarray(Image.open(tmp_path / "out" / "two.png"))
    for y0, y1, x0, x1 in ((100, 200, 90, 170), (65, 90, 404, 424)):  # both faces, the small one too
        assert np.abs(out[y0:y1, x0:x1].astype(int) - two[y0:y1, x0:x1]).mean() > 8
    r = subprocess.run([sys.executable, "-m", "kpdp", "anonymize", str(tmp_path / "in"), str(tmp_path / "o2"),
                        "--eps", "-1"], capture_output=True, text=True)
    assert r.returncode == 2 and "ε must be > 0" in r.stderr


def test_cli_anonymize_keeps_hands_when_asked(tmp_path, sample):
    from kpdp.__main__ import main
    from kpdp.datasets import load_image
    from kpdp.faces.hands import HandFinder

    image = load_image(sample.root / "lfw-deepfunneled" / "Celine_Dion" / "Celine_Dion_0003.jpg")
    (tmp_path / "in").mkdir()
    Image.fromarray(image).save(tmp_path / "in" / "hand.png")
    hand = HandFinder().mask(image).astype(bool)
    moved = {}
    for hands in ("paint", "keep"):
        assert main(["anonymize", str(tmp_path / "in"), str(tmp_path / hands), "--seed", "1", "--hands", hands]) == 0
        out = np.asarray(Image.open(tmp_path / hands / "hand.png")).astype(int)
        moved[hands] = (np.abs(out - image).max(-1) > 8)[hand].mean()
    assert moved["keep"] < 0.05 < 0.3 < moved["paint"], moved


@pytest.mark.parametrize("policy", ["blur-all", "copy"])
def test_cli_no_face_policies(tmp_path, policy):
    from kpdp.__main__ import main

    (tmp_path / "in").mkdir()
    rng = np.random.default_rng(0)
    blank = (rng.random((120, 160, 3)) * 255).astype(np.uint8)
    Image.fromarray(blank).save(tmp_path / "in" / "blank.png")
    assert main(["anonymize", str(tmp_path / "in"), str(tmp_path / "out"), "--seed", "1", "--no-face", policy]) == 0
    out = np.asarray(Image.open(tmp_path / "out" / "blank.png"))
    assert np.array_equal(out, blank) == (policy == "copy")
    if policy == "blur-all":
        assert np.abs(out.astype(int) - blank).mean() > 30  # noise gone: nothing of the image is left
    report = (tmp_path / "out" / "anonymize_report.tsv").read_text()
    assert f"blank.png\t0\t{'blurred whole' if policy == 'blur-all' else 'copied unchanged'}" in report


def test_recall_first_finder_is_the_union(sample):
    from kpdp.faces import get_detector

    two = _two_faces(sample)
    assert len(get_detector("dlib-hog").detect(two)) == 1  # the background face: missed by HOG alone
    found = get_detector("recall").detect(two)
    assert len(found) == 2 and all(len(f.extra["found_by"]) >= 2 for f in found)
