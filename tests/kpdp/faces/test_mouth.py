import numpy as np
import pytest

from kpdp.faces.mouth import MOUTH, mouth_mask, transfer_mouth


def _face(mouth_at=(64, 92)):
    """68 points round a face, the eyes at rows 52, a mouth of 20 points centred on ``mouth_at``."""
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    lm = np.stack([64 + 30 * np.cos(t), 64 + 36 * np.sin(t)], 1)
    lm[36:42], lm[42:48] = (48, 52), (80, 52)
    a = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    lm[MOUTH] = np.stack([mouth_at[0] + 12 * np.cos(a), mouth_at[1] + 5 * np.sin(a)], 1)
    return lm


def _lips(lm, colour=(200, 40, 40)):
    image = np.full((128, 128, 3), 150, np.uint8)
    x, y = lm[MOUTH].mean(0).round().astype(int)
    image[y - 3:y + 4, x - 10:x + 11] = colour
    return image


def test_the_originals_mouth_lands_where_the_drawn_face_has_its_mouth():
    lm_o, lm_d = _face((64, 92)), _face((70, 86))   # the drawn face's mouth 6 px right, 6 up
    original, drawn = _lips(lm_o), np.full((128, 128, 3), 150, np.uint8)
    out = transfer_mouth(drawn, original, lm_d, lm_o)
    assert (np.abs(out[86, 70].astype(int) - (200, 40, 40)) <= 2).all()  # the lips where the drawn mouth is
    assert (np.abs(out[92, 58].astype(int) - 150) <= 2).all()  # not where the original's was
    outside = mouth_mask(lm_d, drawn.shape) == 0
    assert np.array_equal(out[outside], drawn[outside])              # nothing else changes


def test_the_mouth_follows_the_drawn_mouths_size_and_is_limited_to_within():
    lm_o, lm_d = _face(), _face()
    lm_d[MOUTH] = (lm_d[MOUTH] - (64, 92)) * 1.5 + (64, 92)          # a mouth half as large again
    out = transfer_mouth(np.full((128, 128, 3), 150, np.uint8), _lips(lm_o), lm_d, lm_o)
    red = (out[..., 0] > 190) & (out[..., 1] < 60)
    xs = np.nonzero(red.any(0))[0]
    assert 29 <= xs.max() - xs.min() + 1 <= 34                       # 21 px lips drawn 1.5x as wide
    within = np.zeros((128, 128), np.uint8); within[:, :64] = 1
    half = transfer_mouth(np.full((128, 128, 3), 150, np.uint8), _lips(lm_o), lm_d, lm_o, within=within)
    assert np.array_equal(half[:, 64:], np.full((128, 64, 3), 150, np.uint8))


def test_bad_landmarks_are_named():
    with pytest.raises(ValueError, match="shape"):
        transfer_mouth(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), np.zeros((5, 2)), _face())
