"""Tone matching: the drawn face takes the skin tone of the face it replaces.

The drawn face is shifted in CIELAB, inside the mask, by the difference between the median
skin colour of the original face and that of the drawn face, each read on its own *inner face*
(:func:`inner_face`: the landmark hull without eyes, brows and mouth; the original's landmarks for
the original, the privatised ones for the drawn face). A mean shift, as the colour transfer of
Reinhard et al. 2001 (the ``rct`` mode of face-swapping tools) without its rescaling, and read on
skin only: over the whole mask a drawn face's hair pulled its mean as far as its skin did, and a
dark-skinned man was still drawn light-skinned. KPDP's generators draw every face towards their
training majority's tone (``bench/metrics/skin_tone.py`` measures it on another patch, the cheeks
and nose).

Caveat, privacy: the three numbers it reads (median L*, a*, b* of the original's skin) describe a
colouring that the context outside the mask mostly shows already; the ε-DP guarantee covers the
geometry only, so what this adds is measured by the attackers, as everything else in the picture.
"""
from __future__ import annotations

import cv2
import numpy as np

TONES = ("none", "skin")
MIN_PIXELS = 30


def _hull(points: np.ndarray, shape) -> np.ndarray:
    m = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(m, [cv2.convexHull(np.round(points).astype(np.int32))], 1)
    return m


def eye_gap(landmarks: np.ndarray) -> float:
    """Distance between the two eyes' centres (dlib's 68-point order): the unit masks grow by."""
    lm = np.asarray(landmarks, np.float64)
    return float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))


def parts_mask(landmarks: np.ndarray, shape, parts, grow: float = 0.1) -> np.ndarray:
    """``uint8`` union of the hulls of ``parts`` (index sequences or slices of the 68 landmarks),
    grown by ``grow`` x the eye distance (a tenth: what a skin read leaves out)."""
    lm = np.asarray(landmarks, np.float64)
    r = max(1, int(round(grow * eye_gap(lm))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    out = np.zeros(shape[:2], np.uint8)
    for idx in parts:
        out |= _hull(lm[idx], shape)
    return cv2.dilate(out, kernel)


def inner_face(landmarks: np.ndarray, shape) -> np.ndarray:
    """Boolean mask: the hull of the 68 landmarks without the eyes, the brows and the mouth (each
    hull grown by a tenth of the eye distance)."""
    lm = np.asarray(landmarks, np.float64)
    parts = (slice(36, 42), slice(42, 48), slice(17, 22), slice(22, 27), slice(48, 60))
    return (_hull(lm, shape) == 1) & (parts_mask(lm, shape, parts) == 0)


def face_weight(landmarks: np.ndarray, shape) -> np.ndarray:
    """Where the shift applies, in [0, 1]: 1 on the face's hull grown by a fifth of the eye
    distance, falling off smoothly over about as much again. Not the whole mask: the mask also
    holds hair and background, which shifted with the skin made a dark or light ring round the head."""
    lm = np.asarray(landmarks, np.float64)
    gap = eye_gap(lm)
    grow = max(1, int(round(0.2 * gap)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    hull = cv2.dilate(_hull(lm, shape), kernel).astype(np.float32)
    return np.clip(cv2.GaussianBlur(hull, (0, 0), sigmaX=max(1.0, 0.1 * gap)), 0, 1)


def match_skin_tone(generated: np.ndarray, reference: np.ndarray, mask: np.ndarray,
                    lm_generated: np.ndarray, lm_reference: np.ndarray) -> np.ndarray:
    """``generated`` (RGB ``uint8``) shifted in CIELAB so that the median colour of its inner face
    (``lm_generated``) is that of ``reference``'s inner face (``lm_reference``): fully on the drawn
    face (:func:`face_weight`), not on the hair and background around it; pixels outside ``mask``
    are unchanged; returned as it is when either face shows too little skin.

    Example:
        >>> t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
        >>> lm = np.stack([32 + 14 * np.cos(t), 32 + 16 * np.sin(t)], 1)  # any 68 points round a face
        >>> skin = np.zeros((64, 64, 3), np.uint8); skin[:] = (120, 80, 60)   # brown skin
        >>> drawn = skin.copy(); drawn[:] = (225, 180, 160)                   # drawn light
        >>> out = match_skin_tone(drawn, skin, np.ones((64, 64), np.uint8), lm, lm)
        >>> [int(v) for v in out[32, 32]]  # brown again (to one level: 8-bit CIELAB)
        [120, 80, 59]
    """
    inside = np.asarray(mask) > 0
    skin_gen = inner_face(lm_generated, generated.shape) & inside
    skin_ref = inner_face(lm_reference, reference.shape)
    if skin_gen.sum() < MIN_PIXELS or skin_ref.sum() < MIN_PIXELS:
        return generated.copy()
    gen = cv2.cvtColor(generated, cv2.COLOR_RGB2LAB).astype(np.float32)
    ref = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB).astype(np.float32)
    shift = np.median(ref[skin_ref], 0) - np.median(gen[skin_gen], 0)
    gen += shift * face_weight(lm_generated, generated.shape)[..., None] * inside[..., None]
    out = cv2.cvtColor(np.clip(gen, 0, 255).round().astype(np.uint8), cv2.COLOR_LAB2RGB)
    return np.where(inside[..., None], out, generated)
