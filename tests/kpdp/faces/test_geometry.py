import numpy as np

from kpdp.faces import geometry as geo


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(68, 2)) * 30 + 100
    a, s, t = 0.3, 1.7, np.array([5.0, -7.0])
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    dst = s * src @ rot.T + t
    m = geo.umeyama(src, dst)
    np.testing.assert_allclose(geo.apply_affine(m, src), dst, atol=1e-9)
    np.testing.assert_allclose(geo.apply_affine(geo.invert_affine(m), dst), src, atol=1e-6)


def test_alignment_puts_eyes_on_the_template(face_image):
    image, face = face_image
    m = geo.alignment_matrix(face.landmarks, 128)
    five = geo.apply_affine(m, geo.five_points(face.landmarks))
    assert np.abs(five - geo.TEMPLATE_5 * 128).max() < 8  # a least-squares fit of 5 points
    assert geo.align_crop(image, m, 128).shape == (128, 128, 3)


def test_paste_back_changes_only_the_mask(face_image):
    image, face = face_image
    m = geo.alignment_matrix(face.landmarks, 128)
    crop_mask = geo.landmark_mask(geo.apply_affine(m, face.landmarks), (128, 128))
    out = geo.paste_back(image, np.zeros((128, 128, 3), np.uint8), m, crop_mask)
    changed = np.any(out != image, axis=2)
    import cv2

    full = cv2.warpAffine(crop_mask, geo.invert_affine(m), image.shape[1::-1], flags=cv2.INTER_NEAREST)
    assert changed.any() and not (changed & (full == 0)).any()


def test_poisson_paste_back_leaves_no_seam_where_feathering_leaves_a_ring(face_image):
    """A face drawn 40 levels lighter than the skin around it: feathered, its edge is a ring the
    seam metric sees; in the gradient domain it is brought to the skin's shade at the edge."""
    import cv2

    from bench.metrics.seam import seam_step

    image, face = face_image
    m = geo.alignment_matrix(face.landmarks, 128)
    crop = geo.align_crop(image, m, 128)
    lighter = np.clip(crop.astype(int) + 40, 0, 255).astype(np.uint8)
    crop_mask = geo.ellipse_mask((128, 128), 1.0)
    feathered = geo.paste_back(image, lighter, m, crop_mask, feather=3)
    poisson = geo.paste_back(image, lighter, m, crop_mask, feather=3, blend="poisson")
    full = cv2.warpAffine(crop_mask, geo.invert_affine(m), image.shape[1::-1], flags=cv2.INTER_NEAREST)
    assert not (np.any(poisson != image, axis=2) & (full == 0)).any()  # outside the mask: bit-identical
    assert seam_step(image, feathered) > 5 and seam_step(image, poisson) < 3


def test_feathered_alpha_is_zero_outside_and_one_deep_inside():
    mask = np.zeros((60, 60), np.uint8)
    mask[10:50, 10:50] = 1
    a = geo.feathered_alpha(mask, 4)
    assert a[mask == 0].max() == 0 and abs(a[30, 30] - 1) < 1e-6 and 0 < a[11, 30] < 1


def test_check_landmarks_rejects_bad_input():
    import pytest

    with pytest.raises(ValueError, match="shape"):
        geo.check_landmarks(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="NaN"):
        geo.check_landmarks(np.full((68, 2), np.nan))
    with pytest.raises(ValueError, match="degenerate"):
        geo.check_landmarks(np.ones((68, 2)))


def test_the_ellipse_mask_covers_both_faces_without_tracing_the_jaw(sample_landmarks):
    """KPDP's default mask: its outline is one of a few fixed ellipses, whatever the jaw's shape."""
    import cv2

    lm = sample_landmarks["landmarks"][0]
    crop = geo.apply_affine(geo.alignment_matrix(lm, 128), lm)
    wider = crop.copy()
    wider[geo.JAW, 0] = 64 + (crop[geo.JAW, 0] - 64) * 0.93  # another jaw outline, same eyes and mouth
    masks = []
    for pts in (crop, wider):
        s = geo.ellipse_scale(np.vstack([geo.mask_points(crop), geo.mask_points(pts)]))
        masks.append(geo.ellipse_mask((128, 128), s))
        inside = [masks[-1][int(round(y)), int(round(x))] for x, y in geo.mask_points(pts)
                  if 0 <= x < 128 and 0 <= y < 128]
        assert all(inside)
    assert np.array_equal(masks[0], masks[1])
    # the hull mask, by contrast, follows the jaw
    assert not np.array_equal(geo.landmark_mask(crop, (128, 128), 0.25, 0.45), geo.landmark_mask(wider, (128, 128), 0.25, 0.45))
    n, _ = cv2.connectedComponents(masks[0])
    assert n == 2 and geo.ELLIPSE_SCALES[0] == 1.0
