"""`dppix`: DP-Pix (Fan, DBSec 2018) on the face region.

The region's bounding box is cut into ``b x b`` cells; each cell's per-channel mean gets Laplace
noise of scale ``255 * m / (b² * ε)`` (``m`` = number of pixels allowed to differ between
neighbouring images), then every pixel of the cell takes the noisy mean. Noise comes from the
project's one floating-point-safe sampler (:mod:`kpdp.sampler`): the mean is snapped to a grid of
``1/16`` intensity and discrete Laplace noise is added in grid steps; the rounding to the grid can
move a mean by up to one extra step, so the scale is ``(Δ/γ + 1) / ε`` steps (0.4 % above the
nominal scale at the defaults b = 16, m = 16). Pixel values then clamp to [0, 255] (post-processing).

What ε covers: the face region of one image, against changes of at most ``m`` pixels; bigger
changes (another person's face) spend proportionally more. It says nothing about the pixels
outside the region, which are released unchanged.
"""
import numpy as np

from kpdp.method import Anonymizer, mask_bbox, paste_in_mask
from kpdp.sampler import IntegerLaplace

GRID = 1.0 / 16.0


def dppix_scale(b: int, m: int, eps: float) -> float:
    """Nominal Laplace scale of DP-Pix, in intensity units."""
    return 255.0 * m / (b * b * eps)


def dppix_cells(cells: np.ndarray, b: int, m: int, eps: float, sampler: IntegerLaplace) -> np.ndarray:
    """Noisy cell means (float) for an array of exact cell means in [0, 255]."""
    steps = 255.0 * m / (b * b) / GRID + 1.0
    idx = np.rint(np.asarray(cells, np.float64) / GRID).astype(np.int64)
    noisy = idx + sampler.noise(steps / eps, idx.shape)
    return np.clip(noisy * GRID, 0.0, 255.0)


class DPPix(Anonymizer):
    name = "dppix"
    uses_eps = True

    def __init__(self, eps=None, b: int = 16, m: int = 16, **kw):
        super().__init__(eps=eps, b=b, m=m, **kw)
        self.b, self.m = b, m

    def anonymize_face(self, image, face, mask, seed):
        x0, y0, x1, y1 = mask_bbox(mask)
        b = self.b
        h, w = y1 - y0, x1 - x0
        hc, wc = -(-h // b), -(-w // b)
        crop = image[y0:y1, x0:x1].astype(np.float64)
        pad = np.pad(crop, ((0, hc * b - h), (0, wc * b - w), (0, 0)), mode="edge")
        cells = pad.reshape(hc, b, wc, b, 3).mean(axis=(1, 3))
        sampler = IntegerLaplace("seeded", seed) if seed is not None else IntegerLaplace("secure")
        noisy = dppix_cells(cells, b, self.m, self.eps, sampler)
        up = np.repeat(np.repeat(noisy, b, 0), b, 1)[:h, :w]
        out = image.copy()
        out[y0:y1, x0:x1] = np.clip(np.rint(up), 0, 255).astype(np.uint8)
        return paste_in_mask(image, out, mask), None, {"eps_spent": self.eps, "noise_mode": sampler.mode}
