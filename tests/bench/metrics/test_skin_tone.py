"""Skin tone (bench/metrics/skin_tone.py): the patch lies on the cheeks and nose without the eyes,
a face drawn lighter or darker moves its ITA that way and an unchanged one not at all, and the
darker-skin shift averages only the faces below 28°."""
from types import SimpleNamespace

import cv2
import numpy as np

from bench.metrics import skin_tone


def test_the_patch_covers_cheeks_and_nose_not_the_eyes_or_the_mouth(face_image):
    image, face = face_image
    lm = face.landmarks.copy()
    # eyes low in the face (a lowered gaze, a tilt back): they reach into the jaw-to-nose polygon
    lm[36:48, 1] += 0.3 * (lm[42:48, 0].mean() - lm[36:42, 0].mean())
    mask = skin_tone.skin_mask(lm, image.shape)
    assert mask.sum() > 500
    ys, xs = np.nonzero(mask)
    for eye in skin_tone.EYES:
        hull = np.zeros(image.shape[:2], np.uint8)
        cv2.fillPoly(hull, [cv2.convexHull(np.round(lm[list(eye)]).astype(np.int32))], 1)
        assert not (mask & (hull == 1)).any()
    mouth = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mouth, [cv2.convexHull(np.round(lm[48:60]).astype(np.int32))], 1)
    assert not (mask & (mouth == 1)).any()
    assert lm[:, 0].min() <= xs.min() and xs.max() <= lm[:, 0].max() and ys.min() >= lm[17:27, 1].max()
    nose_tip = np.round(lm[30]).astype(int)
    assert mask[nose_tip[1], nose_tip[0]]


def test_lighter_and_darker_faces_move_the_angle_that_way(face_image):
    image, face = face_image
    inside = skin_tone.skin_mask(face.landmarks, image.shape)
    lighter, darker = image.astype(int), image.astype(int)
    lighter[inside] += 40
    darker[inside] -= 40
    before, up = skin_tone.ita_change(image, np.clip(lighter, 0, 255).astype(np.uint8), face.landmarks)
    _, down = skin_tone.ita_change(image, np.clip(darker, 0, 255).astype(np.uint8), face.landmarks)
    assert up > 5 and down < -5
    assert skin_tone.ita_change(image, image.copy(), face.landmarks)[1] == 0
    assert -90 < before < 90


def test_only_darker_originals_enter_the_darker_shift():
    records = [{"ita_original": 50.0, "ita_change": -4.0}, {"ita_original": 10.0, "ita_change": 6.0},
               {"ita_original": -20.0, "ita_change": 2.0}, {}]
    cell = SimpleNamespace(probe_records=lambda: records, probe_identities=np.array([0, 1, 2, 3]), boot_seed=0)
    rows = {r.metric: r for r in skin_tone.SkinToneGroup().aggregate(cell)}
    assert rows["skin_tone_error"].value == 4.0 and rows["skin_tone_error"].n == 3
    assert rows["skin_tone_shift_darker"].value == 4.0 and rows["skin_tone_shift_darker"].n == 2
