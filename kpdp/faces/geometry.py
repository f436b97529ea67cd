"""Face geometry shared by `kpdp` and the baselines: alignment, masks, crops and paste-back.

Landmark convention: 68-point iBUG (dlib ``shape_predictor_68`` / FAN), ``(68, 2)`` float arrays
of ``(x, y)`` pixel coordinates, index 0-16 jaw, 17-26 brows, 27-35 nose, 36-47 eyes (outer
corners 36 and 45), 48-67 mouth. Boxes are ``(x0, y0, x1, y1)`` in pixels, ``x1``/``y1`` exclusive.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .blend import poisson_composite

JAW = slice(0, 17)
BROWS = slice(17, 27)
LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
OUTER_EYE_CORNERS = (36, 45)

# Canonical 5-point template (eye centres, nose tip, mouth corners) in unit crop coordinates.
# Derived from the ArcFace 112 px template, zoomed out so that the whole jaw, the brows and some
# forehead and background fit into the crop: the generator needs context around the mask.
_ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]])
TEMPLATE_5 = 0.5 + (_ARCFACE_112 / 112.0 - np.array([0.5, 0.55])) * 0.62


@dataclass
class Face:
    """One face in an image: its box and, when known, its 68 landmarks."""

    box: np.ndarray
    landmarks: np.ndarray | None = None
    score: float = 1.0
    extra: dict = field(default_factory=dict)

    @property
    def size(self) -> float:
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))


def check_landmarks(lm: np.ndarray, n: int = 68) -> np.ndarray:
    """Validate one landmark set; raise ValueError with a specific reason."""
    lm = np.asarray(lm, dtype=np.float64)
    if lm.shape != (n, 2):
        raise ValueError(f"landmarks must have shape ({n}, 2), got {lm.shape}")
    if not np.all(np.isfinite(lm)):
        raise ValueError("landmarks contain NaN or infinite values")
    if np.ptp(lm, axis=0).max() < 1e-6:
        raise ValueError("landmarks are degenerate (all points equal)")
    return lm


def five_points(lm68: np.ndarray) -> np.ndarray:
    """Eye centres, nose tip, mouth corners from 68 landmarks (the 5-point alignment convention)."""
    lm68 = np.asarray(lm68, dtype=np.float64)
    return np.stack([lm68[LEFT_EYE].mean(0), lm68[RIGHT_EYE].mean(0), lm68[30], lm68[48], lm68[54]])


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src onto dst, 2x3."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    var_s = (s0 ** 2).sum() / len(src)
    scale = (sig * d).sum() / var_s if var_s > 0 else 1.0
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def invert_affine(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(m, np.float64))


def alignment_matrix(lm68: np.ndarray, size: int = 128) -> np.ndarray:
    """2x3 similarity from image pixels to an aligned ``size x size`` crop."""
    return umeyama(five_points(lm68), TEMPLATE_5 * size)


def align_crop(image: np.ndarray, m: np.ndarray, size: int = 128) -> np.ndarray:
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def landmark_mask(lm68: np.ndarray, shape: tuple[int, int], dilate: float = 0.08,
                  forehead: float = 0.10) -> np.ndarray:
    """Binary ``uint8`` mask of the area enclosed by the jaw and the brows, dilated by
    ``dilate`` x the face width (pixels). Brows are lifted by ``forehead`` x the face height so
    that the mask covers the forehead band where brow shape carries identity."""
    lm = np.asarray(lm68, np.float64)
    brows = lm[BROWS].copy()
    face_h = lm[:, 1].max() - lm[:, 1].min()
    brows[:, 1] -= forehead * face_h
    hull = cv2.convexHull(np.vstack([lm[JAW], brows]).astype(np.float32))
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, np.round(hull).astype(np.int32), 1)
    r = int(round(dilate * (lm[:, 0].max() - lm[:, 0].min())))
    if r > 0:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return mask


# The smooth inpainting mask of KPDP, in aligned 128-px crop coordinates (alignment_matrix puts the
# eyes, nose and mouth corners at fixed places): an ellipse from the forehead to below the chin and
# past the cheeks, sized on LFW devtrain so that the landmark hull dilated by 25 % of the face width,
# brows lifted by 45 % of its height, fits in it for the median face. Only a uniform scale, from a
# short fixed list, adapts it to the two faces it must cover (jaw and brows lifted by 25 %: the
# ellipse's own margin covers the rest): the outline does not trace the original jaw. It does show
# where the crop is, i.e. the original's five-point alignment, and the scale (set mostly by the
# original face); docs/privacy.md lists both among what ε does not cover.
ELLIPSE_CENTRE = (64.0, 62.0)
ELLIPSE_AXES = (46.0, 56.0)
ELLIPSE_SCALES = (1.0, 1.1, 1.2, 1.35, 1.5)


def ellipse_scale(points: np.ndarray, size: int = 128, margin: float = 0.92) -> float:
    """The smallest of ``ELLIPSE_SCALES`` whose ellipse holds every point (crop coordinates) within
    ``margin`` of its radius; the largest when none does."""
    k = size / 128.0
    c, ax = np.array(ELLIPSE_CENTRE) * k, np.array(ELLIPSE_AXES) * k
    r = np.sqrt((((np.asarray(points, np.float64).reshape(-1, 2) - c) / ax) ** 2).sum(-1)).max()
    for s in ELLIPSE_SCALES:
        if r <= margin * s:
            return s
    return ELLIPSE_SCALES[-1]


def ellipse_mask(shape: tuple[int, int], scale: float = 1.0, size: int = 128) -> np.ndarray:
    """Binary ``uint8`` mask of the KPDP ellipse at ``scale`` (crop of ``size`` px)."""
    k = size / 128.0
    mask = np.zeros(shape[:2], np.uint8)
    centre = tuple(int(round(v * k * 16)) for v in ELLIPSE_CENTRE)
    axes = tuple(int(round(v * k * scale * 16)) for v in ELLIPSE_AXES)
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1, cv2.LINE_8, 4)  # 4 fractional bits
    return mask


def mask_points(lm68: np.ndarray, forehead: float = 0.25) -> np.ndarray:
    """The points a face mask must cover: the jaw and the brows lifted by ``forehead`` x face height."""
    lm = np.asarray(lm68, np.float64)
    brows = lm[BROWS].copy()
    brows[:, 1] -= forehead * (lm[:, 1].max() - lm[:, 1].min())
    return np.vstack([lm[JAW], brows])


def box_mask(box: np.ndarray, shape: tuple[int, int], margin: float = 0.0) -> np.ndarray:
    """Binary ``uint8`` mask of a box grown by ``margin`` x its size on every side, clipped."""
    return _fill_box(np.zeros(shape[:2], np.uint8), expand_box(box, margin, shape), 1)


def expand_box(box: np.ndarray, margin: float, shape: tuple[int, int] | None = None) -> np.ndarray:
    x0, y0, x1, y1 = (float(v) for v in box)
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    out = np.array([x0 - dx, y0 - dy, x1 + dx, y1 + dy])
    if shape is not None:
        out = np.clip(out, 0, [shape[1], shape[0], shape[1], shape[0]])
    return np.round(out).astype(int)


def _fill_box(mask: np.ndarray, box: np.ndarray, value: int) -> np.ndarray:
    x0, y0, x1, y1 = (int(v) for v in box)
    mask[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = value
    return mask


def landmark_box(lm68: np.ndarray) -> np.ndarray:
    lm = np.asarray(lm68)
    return np.array([lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max() + 1, lm[:, 1].max() + 1])


def feathered_alpha(mask: np.ndarray, radius: int) -> np.ndarray:
    """Soft ``float32`` alpha in [0, 1] that is exactly 0 wherever ``mask`` is 0 (so pixels
    outside the mask stay bit-identical) and ramps up over ``radius`` pixels inside it."""
    mask = (np.asarray(mask) > 0).astype(np.float32)
    if radius <= 0:
        return mask
    k = 2 * radius + 1
    inner = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return cv2.GaussianBlur(inner, (k, k), radius / 2.0) * mask


def composite(image: np.ndarray, generated: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``alpha * generated + (1 - alpha) * image``, leaving pixels with ``alpha == 0`` untouched."""
    a = alpha[..., None].astype(np.float32)
    out = a * generated.astype(np.float32) + (1 - a) * image.astype(np.float32)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    return np.where(a > 0, out, image)


BLENDS = ("feather", "poisson")


def paste_back(image: np.ndarray, crop: np.ndarray, m: np.ndarray, crop_mask: np.ndarray,
               feather: int = 4, blend: str = "feather") -> np.ndarray:
    """Warp an aligned crop back into the image with the inverse of ``m`` and blend it over the
    (feathered) mask. Only pixels covered by the warped mask change. ``blend="poisson"`` first
    matches the crop to the image at the mask's edge in the gradient domain
    (:func:`kpdp.faces.blend.poisson_composite`: no ring, no halo), then feathers as before."""
    if blend not in BLENDS:
        raise ValueError(f"unknown blend '{blend}'; valid: {', '.join(BLENDS)}")
    h, w = image.shape[:2]
    inv = invert_affine(m)
    back = cv2.warpAffine(crop, inv, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    scale = np.sqrt(abs(np.linalg.det(inv[:, :2])))
    mask_full = cv2.warpAffine(crop_mask.astype(np.uint8), inv, (w, h), flags=cv2.INTER_NEAREST,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if blend == "poisson":
        back = poisson_composite(image, back, mask_full)
    return composite(image, back, feathered_alpha(mask_full, max(1, int(round(feather * scale)))))
