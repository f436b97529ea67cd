"""Tone matching (kpdp/faces/tone.py): a face drawn lighter than the one it replaces is brought to
its skin tone inside the mask, nothing outside the mask moves, the shift is read on skin (not on
eyes, brows or mouth), and a face already in the right tone keeps its own detail."""
import numpy as np

from kpdp.faces.tone import inner_face, match_skin_tone


def _crop(face_image):
    image, face = face_image
    x0, y0 = np.maximum(face.landmarks.min(0).astype(int) - 10, 0)
    x1, y1 = face.landmarks.max(0).astype(int) + 10
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    mask = np.zeros(crop.shape[:2], np.uint8)
    mask[5:-5, 5:-5] = 1
    return crop, mask, face.landmarks - [x0, y0]


def test_a_lighter_drawn_face_takes_the_original_skin_tone_and_the_outside_stays(face_image):
    crop, mask, lm = _crop(face_image)
    lighter = np.clip(crop.astype(int) + 50, 0, 255).astype(np.uint8)
    out = match_skin_tone(lighter, crop, mask, lm, lm)
    skin = inner_face(lm, crop.shape)
    assert np.abs(lighter[skin].mean(0) - crop[skin].mean(0)).max() > 40
    assert np.abs(out[skin].astype(float).mean(0) - crop[skin].mean(0)).max() < 4
    inside = mask > 0
    assert np.array_equal(out[~inside], lighter[~inside])


def test_the_skin_read_leaves_out_eyes_brows_and_mouth(face_image):
    crop, _, lm = _crop(face_image)
    skin = inner_face(lm, crop.shape)
    for i in (37, 44, 19, 24, 51, 57):  # a point of each eye, brow and lip
        x, y = np.round(lm[i]).astype(int)
        assert not skin[y, x]
    x, y = np.round(lm[30]).astype(int)  # the nose tip is skin
    assert skin[y, x]


def test_a_face_in_the_right_tone_keeps_its_own_detail(face_image):
    crop, mask, lm = _crop(face_image)
    mirrored = np.ascontiguousarray(crop[:, ::-1])  # another drawing, the same colouring
    lm_mirrored = lm.copy()
    lm_mirrored[:, 0] = crop.shape[1] - 1 - lm[:, 0]
    out = match_skin_tone(mirrored, crop, mask, lm_mirrored, lm)
    inside = mask > 0
    assert np.abs(out[inside].astype(int) - mirrored[inside]).mean() < 3
    assert np.abs(out[inside].astype(int) - crop[inside]).mean() > 10  # not the original copied back
