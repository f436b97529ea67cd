"""Seam step (bench/metrics/seam.py): a paste lighter or greyer than its surroundings scores its
step in grey levels, one that continues the original's shading scores near 0, sectors do not cancel,
an unchanged image has no seam."""
import cv2
import numpy as np

from bench.metrics import seam


def _ellipse(image):
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.ellipse(mask, (125, 130), (55, 70), 0, 0, 360, 1, -1)
    return mask.astype(bool)


def test_a_grey_paste_a_lighter_face_and_a_seamless_paste(face_image):
    image, _ = face_image
    inside = _ellipse(image)
    grey = image.copy()
    grey[inside] = 128
    lighter = image.copy()
    lighter[inside] = np.clip(image[inside].astype(int) + 30, 0, 255)
    seamless = image.copy()
    seamless[inside] = np.clip(image[inside].astype(int) + 1, 0, 255)
    assert seam.seam_step(image, grey) > 10
    assert 20 < seam.seam_step(image, lighter) <= 31
    assert seam.seam_step(image, seamless) < 1.5
    assert seam.seam_step(image, image.copy()) is None


def test_one_side_lighter_and_the_other_darker_do_not_cancel(face_image):
    image, _ = face_image
    inside = _ellipse(image)
    left = np.zeros_like(inside)
    left[:, :125] = True
    two_tone = image.astype(int)
    two_tone[inside & left] += 30
    two_tone[inside & ~left] -= 30
    two_tone = np.clip(two_tone, 0, 255).astype(np.uint8)
    assert seam.seam_step(image, two_tone) > 20


def test_the_rings_lie_on_each_side_of_the_edge():
    changed = np.zeros((40, 40), bool)
    changed[10:30, 10:30] = True
    inner, outer, width = seam.rings(changed, 3)
    assert width == 3 and inner[10, 20] and inner[12, 20] and not inner[20, 20]
    assert outer[8, 20] and not outer[10, 20] and not outer[0, 20]
