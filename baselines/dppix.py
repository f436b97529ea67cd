"""`dppix`: DP-Pix (Fan, DBSec 2018) on the face region, with an exact sensitivity.

Neighbouring relation: two images of the same size with the same face region (the region's
location comes from the original image and is *not* private) that differ in at most ``m`` pixels
inside the region, each changed pixel taking any values in all three channels (an RGB pixel is
three intensities).

Release: the region's bounding box is cut into ``b x b`` cells; the cells at the right and bottom
edges may be smaller (no padding, no copying of pixels). For every cell and channel the integer
*sum* of the cell's pixel values gets discrete Laplace noise of scale ``t = 3·255·m / ε`` (sum
units) from :mod:`kpdp.sampler`. Proof sketch of the L1 sensitivity ``Δ = 3·255·m``:

1. a pixel lies in exactly one cell, so changing it changes only that cell's three channel sums;
2. each channel sum moves by at most 255 (uint8 values), so one pixel moves the release by <= 3·255;
3. ``m`` pixels move it by <= 3·255·m in L1 (triangle inequality), attained by m pixels 0 <-> 255.

The sums and ``Δ`` are integers and the noise is exact discrete Laplace (``P(z) ∝ exp(-|z|/t)``),
so the release is ε-DP (``Δ / t = ε``) with no rounding margin and no floating-point caveat;
:func:`dppix_release` has OpenDP's privacy map confirm it before drawing (``check_privacy``).
Everything after that is post-processing: a cell's displayed mean is ``noisy_sum / n_pixels``,
clamped to [0, 255] and rounded to uint8, and every pixel of the cell takes it. For a full cell the
noise on the displayed mean has scale ``3·255·m / (b²·ε)`` (:func:`dppix_scale`): three times the
single-channel scale ``255·m / (b²·ε)`` of Fan (2018), because the budget is split over the three
channels a changed RGB pixel touches. A partial cell of ``n < b²`` pixels gets the same noise on its
sum, i.e. ``b²/n`` times more on its mean (honest: fewer pixels to average over).

What ε covers: the face region of one image against changes of at most ``m`` of its pixels;
bigger changes (another person's face) spend proportionally more. Pixels outside the region are
released unchanged and are not protected; which pixels form the region is taken from the original
image and is public. With ``region="landmarks"`` the release covers the region's bounding box, and
only the pixels inside the landmark mask are replaced.
"""
from __future__ import annotations

import numpy as np

from kpdp.method import Anonymizer, mask_bbox, paste_in_mask
from kpdp.sampler import IntegerLaplace

CHANNELS = 3
MAX_VALUE = 255


def dppix_sensitivity(m: int) -> int:
    """L1 sensitivity of the cell-sum release (sum units) for ``m`` changed RGB pixels."""
    if int(m) != m or m < 1:
        raise ValueError("m must be a positive integer")
    return CHANNELS * MAX_VALUE * int(m)


def dppix_noise_scale(m: int, eps: float) -> float:
    """Discrete Laplace scale ``t`` on every cell/channel sum, in sum units: ``Δ / ε``."""
    return dppix_sensitivity(m) / float(eps)


def dppix_scale(b: int, m: int, eps: float) -> float:
    """Laplace scale on the displayed mean of a full ``b x b`` cell, in intensity units."""
    return dppix_noise_scale(m, eps) / (b * b)


def dppix_cell_sums(crop: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell, per-channel integer sums of a uint8 crop ``(..., h, w, 3)``.

    Returns ``sums`` (int64, ``(..., hc, wc, 3)``) and ``counts`` (int64, ``(hc, wc)``, pixels per
    cell). Cells at the right/bottom edges are smaller: no padding, no pixel counted twice."""
    crop = np.asarray(crop)
    if crop.dtype != np.uint8:
        raise TypeError("DP-Pix works on uint8 pixels (the sensitivity assumes values in [0, 255])")
    if crop.ndim < 3 or crop.shape[-1] != CHANNELS:
        raise ValueError("DP-Pix works on RGB crops (..., h, w, 3)")
    h, w = crop.shape[-3:-1]
    rows = np.add.reduceat(crop, np.arange(0, h, b), axis=-3, dtype=np.int64)
    sums = np.add.reduceat(rows, np.arange(0, w, b), axis=-2)
    return sums, dppix_counts(h, w, b)


def dppix_counts(h: int, w: int, b: int) -> np.ndarray:
    """Pixels per cell (int64, ``(hc, wc)``) of an ``h x w`` region cut into ``b x b`` cells."""
    rows = np.minimum(b, h - b * np.arange(-(-h // b)))
    cols = np.minimum(b, w - b * np.arange(-(-w // b)))
    return np.outer(rows, cols).astype(np.int64)


def dppix_release(crop: np.ndarray, b: int, m: int, eps: float, sampler: IntegerLaplace) -> np.ndarray:
    """The ε-DP release: noisy integer cell sums (int64, ``(..., hc, wc, 3)``). OpenDP's privacy
    map of the noise at sensitivity ``Δ`` is checked against ``eps`` first (raises if above)."""
    sums, _ = dppix_cell_sums(crop, b)
    if eps == float("inf"):  # no privacy asked for: the exact sums (plain pixelation), as ε = ∞ is for kpdp
        return sums
    t = dppix_noise_scale(m, eps)
    sampler.check_privacy(dppix_sensitivity(m), t, eps)
    return sums + sampler.noise(t, sums.shape)


def dppix_render(noisy_sums: np.ndarray, counts: np.ndarray, b: int, h: int, w: int) -> np.ndarray:
    """Post-processing: every pixel of a cell shows the cell's noisy mean, clamped and rounded."""
    means = noisy_sums / counts[..., None]
    cells = np.clip(np.rint(means), 0, MAX_VALUE).astype(np.uint8)
    return np.take(np.take(cells, np.arange(h) // b, axis=-3), np.arange(w) // b, axis=-2)


def dppix_image(crop: np.ndarray, b: int, m: int, eps: float, sampler: IntegerLaplace) -> np.ndarray:
    """DP-Pix of a uint8 crop ``(..., h, w, 3)`` (leading axes = independent releases)."""
    h, w = crop.shape[-3:-1]
    return dppix_render(dppix_release(crop, b, m, eps, sampler), dppix_counts(h, w, b), b, h, w)


class DPPix(Anonymizer):
    name = "dppix"
    uses_eps = True

    def __init__(self, eps=None, b: int = 16, m: int = 16, **kw):
        super().__init__(eps=eps, b=b, m=m, **kw)
        dppix_sensitivity(m)
        if int(b) != b or b < 1:
            raise ValueError("b must be a positive integer")
        self.b, self.m = int(b), int(m)

    @property
    def version(self) -> str:
        return "2"  # 2: cell sums with exact sensitivity 3·255·m (1: padded means, one-channel scale)

    def anonymize_face(self, image, face, mask, seed):
        x0, y0, x1, y1 = mask_bbox(mask)
        sampler = IntegerLaplace("seeded", seed) if seed is not None else IntegerLaplace("secure")
        out = image.copy()
        out[y0:y1, x0:x1] = dppix_image(image[y0:y1, x0:x1], self.b, self.m, self.eps, sampler)
        return paste_in_mask(image, out, mask), None, {"eps_spent": self.eps, "noise_mode": sampler.mode}
