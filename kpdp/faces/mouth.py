"""The original's mouth, moved onto the drawn face's mouth: an expression the FER network can read.

Why: KPDP's ellipse mask hides the mouth, and the generator draws one from the 68-point drawing of
the (privatised) geometry. Taught to follow that drawing more closely (issue 35, chunk 7: dlib's
landmark error 10-12 % lower), its faces were no more expressive: the expression network reads what
68 points do not carry (teeth, the inside of the mouth, the lips' shading). This puts the original's
own mouth back, moved by a similarity transform onto where the drawn face's mouth is (so the
privatised geometry still decides where and how large it is) and pasted in the gradient domain
(its colours brought to the drawn skin around it).

Caveat next to the code: the moved mouth's *texture* is the original's. It is outside the ε-DP
guarantee, which covers the geometry only (as everything outside the mask already is), so its cost
in privacy is an empirical question: measure it with every attacker before using it
(``kpdp[mouth=original]``, reports/kpdp-v3-progress/).
"""
from __future__ import annotations

import cv2
import numpy as np

from .blend import poisson_composite
from .geometry import check_landmarks, umeyama
from .tone import parts_mask

MOUTHS = ("drawn", "original")
MOUTH = slice(48, 68)  # outer and inner lips, dlib's 68-point order
OUTER_LIPS = slice(48, 60)
GROW = 0.25  # the mouth's hull grown by this x the eye distance: lips, their shading, a margin of skin


def mouth_mask(landmarks: np.ndarray, shape, grow: float = GROW) -> np.ndarray:
    """``uint8`` mask: the hull of the outer lips grown by ``grow`` x the distance between the eyes."""
    return parts_mask(check_landmarks(landmarks), shape, [OUTER_LIPS], grow)


def transfer_mouth(drawn: np.ndarray, original: np.ndarray, lm_drawn: np.ndarray, lm_original: np.ndarray,
                   within: np.ndarray | None = None, grow: float = GROW) -> np.ndarray:
    """``drawn`` (RGB ``uint8``) with ``original``'s mouth (``lm_original``'s points 48-67) moved
    onto its own mouth (``lm_drawn``'s) by the least-squares similarity between the two, pasted in
    the gradient domain over :func:`mouth_mask` of ``lm_drawn``; ``within`` (a mask) limits the
    pixels that may change. Pixels outside the mouth's mask are ``drawn``'s, bit for bit.

    Example:
        >>> t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
        >>> lm = np.stack([64 + 30 * np.cos(t), 64 + 36 * np.sin(t)], 1)  # any 68 points round a face
        >>> lm[36:42], lm[42:48] = (48, 52), (80, 52)                       # the eyes
        >>> lm[48:68] = np.stack([64 + 12 * np.cos(t[:20] * 3.4), 92 + 5 * np.sin(t[:20] * 3.4)], 1)
        >>> original = np.full((128, 128, 3), 150, np.uint8); original[88:96, 54:74] = (200, 40, 40)  # red lips
        >>> drawn = np.full((128, 128, 3), 150, np.uint8)                   # a face drawn without lips
        >>> moved = lm.copy(); moved[48:68] += (3, 4)                        # its mouth 3 px right, 4 down
        >>> out = transfer_mouth(drawn, original, moved, lm)
        >>> int(np.abs(out[96, 67].astype(int) - (200, 40, 40)).max()) <= 2  # red lips where its mouth is
        True
        >>> [int(v) for v in out[30, 30]]                                    # the rest as drawn
        [150, 150, 150]
    """
    lm_d, lm_o = check_landmarks(lm_drawn), check_landmarks(lm_original)
    h, w = drawn.shape[:2]
    move = umeyama(lm_o[MOUTH], lm_d[MOUTH])
    moved = cv2.warpAffine(original, move, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    mask = mouth_mask(lm_d, drawn.shape, grow)
    if within is not None:
        mask &= (np.asarray(within) > 0).astype(np.uint8)
    return poisson_composite(drawn, moved, mask)
