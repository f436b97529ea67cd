"""Skin tone kept or changed: the Individual Typology Angle (ITA) of the face's skin before and
after anonymisation.

ITA (Chardon et al. 1991, the measure of constitutive skin colour in dermatology and in fairness
audits of face data) is ``atan((L* - 50) / b*)`` in degrees, from CIELAB: above 55° very light,
41-55 light, 28-41 intermediate, 10-28 tan, -30-10 brown, below -30 dark. Here L* and b* are the
medians over the *cheek-and-nose patch* of the original's primary face (:func:`skin_mask`: from
the upper jaw down to the nose's base, the eyes cut out), read from the original and from the
anonymised image alike, so that a method that draws the face elsewhere is not measured on the
background. Medians, so that a highlight or a strand of hair does not move it.

``skin_tone_error`` is the mean of ``|ITA(anonymised) - ITA(original)|``; ``skin_tone_shift_darker``
the mean *signed* change (positive: drawn lighter) over the faces whose original ITA is below 28°
(tan, brown, dark), the group a generator trained on mostly light faces lightens.

Caveat: ITA measured in a photo mixes skin colour with the scene's light and the camera's white
balance; it is compared here only between an image and its own anonymised version, under the same
light. Its absolute value is not a person's skin type.
"""
from __future__ import annotations

import cv2
import numpy as np

from bench.metrics.registry import MetricGroup, MetricSpec, PerImage, Row, mean_rows, register_group
from kpdp.faces.tone import parts_mask

#: ITA below which a face counts as tan or darker (Chardon's categories)
DARKER_ITA = 28.0
#: the patch's outline in dlib's 68-point order: left upper jaw, the nose's base, right upper jaw,
#: the nose's bridge (cheeks and nose; no beard line, no mouth, no brows)
PATCH = (1, 2, 3, 31, 32, 33, 34, 35, 13, 14, 15, 28)
EYES = (tuple(range(36, 42)), tuple(range(42, 48)))
MIN_PIXELS = 30


def skin_mask(landmarks: np.ndarray, shape) -> np.ndarray:
    """Boolean mask of the cheek-and-nose patch of a face's 68 landmarks, eyes cut out (grown by a
    tenth of the eye distance, as :func:`kpdp.faces.tone.inner_face` cuts them)."""
    lm = np.asarray(landmarks, np.float64)
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(lm[list(PATCH)]).astype(np.int32)], 1)
    return (mask == 1) & (parts_mask(lm, shape, [list(eye) for eye in EYES]) == 0)


def individual_typology_angle(image: np.ndarray, mask: np.ndarray) -> float | None:
    """ITA in degrees of an RGB ``uint8`` image's pixels under ``mask`` (medians of L* and b*);
    None when the mask holds fewer than :data:`MIN_PIXELS` pixels.

    Example:
        >>> skin = np.zeros((20, 20, 3), np.uint8); skin[:] = (224, 172, 140)  # light skin
        >>> round(individual_typology_angle(skin, np.ones((20, 20), bool)))
        46
        >>> skin[:] = (150, 100, 70)  # brown skin
        >>> round(individual_typology_angle(skin, np.ones((20, 20), bool)))
        -7
    """
    if int(mask.sum()) < MIN_PIXELS:
        return None
    lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)[mask]
    lightness, yellow = float(np.median(lab[:, 0])), float(np.median(lab[:, 2]))
    return float(np.degrees(np.arctan2(lightness - 50.0, yellow)))


def ita_change(original: np.ndarray, anonymised: np.ndarray, landmarks: np.ndarray) -> tuple[float, float] | None:
    """(ITA of the original, ITA of the anonymised image minus it) on the original face's patch."""
    mask = skin_mask(landmarks, original.shape)
    before = individual_typology_angle(original, mask)
    after = individual_typology_angle(anonymised, mask)
    if before is None or after is None:
        return None
    return before, after - before


@register_group
class SkinToneGroup(MetricGroup):
    name = "skin_tone"
    version = "1"
    cached = False  # a colour conversion of one patch: cheaper than a cache round trip
    metrics = (MetricSpec("skin_tone_error", "skin_tone", "", False, "skin tone error (ITA°)", 1.0,
                          definition="mean absolute change of the face's Individual Typology Angle "
                                     "(skin colour in CIELAB, on the cheeks and nose of the original "
                                     "face) between original and anonymised image",
                          unit="degrees of ITA"),
               MetricSpec("skin_tone_shift_darker", "skin_tone", "", None, "darker skin drawn lighter (ITA°)",
                          definition="mean signed change of the ITA (positive: drawn lighter) over the "
                                     f"faces whose original ITA is below {DARKER_ITA:g}° (tan, brown, dark)",
                          unit="degrees of ITA", in_tables=False))

    def anonymised(self, ctx):
        original = ctx.image if ctx.original is None else ctx.original
        change = ita_change(original, ctx.image, ctx.primary.landmarks)
        if change is None:
            return {}, {}
        return {"ita_original": change[0], "ita_change": change[1]}, {}

    def per_image(self, cell) -> PerImage:
        recs = cell.probe_records()
        out = {}
        for name, keep, value in (("skin_tone_error", lambda ita: True, abs),
                                  ("skin_tone_shift_darker", lambda ita: ita < DARKER_ITA, lambda d: d)):
            pos = [k for k, r in enumerate(recs) if r.get("ita_change") is not None and keep(r["ita_original"])]
            out[(name, "")] = (pos, np.array([value(recs[k]["ita_change"]) for k in pos], np.float64))
        return out

    def aggregate(self, cell) -> list[Row]:
        return mean_rows(cell, self.per_image(cell))
