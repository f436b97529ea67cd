"""Background preservation: PSNR and SSIM of the anonymised image against the original, computed
only outside the dilated face mask (the same mask the baselines use,
:func:`kpdp.faces.geometry.landmark_mask` with its default dilation, or the face box).

PSNR uses only pixels outside the mask (``data_range`` 255; identical backgrounds give +inf,
reported as 100 dB so that means stay finite). SSIM is torchmetrics' SSIM map (Gaussian window 11,
σ 1.5) averaged over pixels outside the mask eroded by the window radius, so that no window
straddles the face."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from bench.metrics.registry import MetricGroup, MetricSpec, PerImage, Row, mean_rows, register_group
from kpdp.method import face_region

PSNR_CAP = 100.0


def background_psnr_ssim(original: np.ndarray, anonymised: np.ndarray, face_mask: np.ndarray) -> tuple[float, float]:
    """(PSNR, SSIM) outside ``face_mask`` (non-zero = face).

    Example:
        >>> a = np.full((64, 64, 3), 100, np.uint8); m = np.zeros((64, 64), np.uint8); m[20:40, 20:40] = 1
        >>> b = a.copy(); b[20:40, 20:40] = 0
        >>> background_psnr_ssim(a, b, m)
        (100.0, 1.0)
    """
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim_fn

    outside = np.asarray(face_mask) == 0
    if not outside.any():
        raise ValueError("the face mask covers the whole image: no background to compare")
    diff = original.astype(np.float64)[outside] - anonymised.astype(np.float64)[outside]
    mse = float((diff ** 2).mean())
    psnr = PSNR_CAP if mse == 0 else min(PSNR_CAP, 10 * np.log10(255.0 ** 2 / mse))
    far = cv2.erode(outside.astype(np.uint8), np.ones((11, 11), np.uint8)).astype(bool)
    region = far if far.any() else outside
    changed = (original != anonymised).any(-1)
    if not changed.any():
        return float(psnr), 1.0
    # A window over identical pixels scores exactly 1, so SSIM is computed only on the box of changed
    # pixels grown by 10 px (windows within 5 px of a change lie inside it, away from its edges)
    ys, xs = np.nonzero(changed)
    h, w = changed.shape
    y0, y1, x0, x1 = max(ys.min() - 10, 0), min(ys.max() + 11, h), max(xs.min() - 10, 0), min(xs.max() + 11, w)
    # float32: SSIM's constants are ~6.5 at data_range 255, far above float32 rounding, and CPU
    # float64 convolutions are ~18x slower
    # a copy: inputs may be read-only arrays, which torch.from_numpy warns about
    to_t = lambda x: torch.from_numpy(np.array(x[y0:y1, x0:x1])).permute(2, 0, 1)[None].float()  # noqa: E731
    _, smap = ssim_fn(to_t(anonymised), to_t(original), data_range=255.0, return_full_image=True)
    full = np.ones((h, w), np.float64)
    iy0, ix0 = (5 if y0 > 0 else 0), (5 if x0 > 0 else 0)  # crop edges (not image edges) are padded differently
    iy1, ix1 = (y1 - y0) - (5 if y1 < h else 0), (x1 - x0) - (5 if x1 < w else 0)
    full[y0 + iy0:y0 + iy1, x0 + ix0:x0 + ix1] = smap[0].mean(0).numpy()[iy0:iy1, ix0:ix1]
    smap = full
    return float(psnr), float(smap[region].mean())


# -- the harness's group ---------------------------------------------------------------------------


def background_mask(faces, shape) -> np.ndarray:
    """The same mask for every method: the baselines' face box region of every face."""

    mask = np.zeros(shape[:2], np.uint8)
    for f in faces:
        mask |= face_region(f, shape, "box")
    return mask


@register_group
class BackgroundGroup(MetricGroup):
    name = "background"
    version = "2"
    cached = False  # no model: recomputing costs less than a cache round trip of the image pair
    metrics = (MetricSpec("bg_psnr", "background", "", True, "bg PSNR", 0.5,
                          definition="peak signal-to-noise ratio between original and anonymised "
                                     "image outside the (dilated) face",
                          unit="dB"),
               MetricSpec("bg_ssim", "background", "", True, "bg SSIM", 0.005,
                          definition="structural similarity between original and anonymised image "
                                     "outside the (dilated) face",
                          unit="index, 0–1"))

    def anonymised(self, ctx):
        original = ctx.image if ctx.original is None else ctx.original
        psnr, ssim = background_psnr_ssim(original, ctx.image, background_mask(ctx.faces, original.shape))
        return {"bg_psnr": psnr, "bg_ssim": ssim}, {}

    def per_image(self, cell) -> PerImage:
        recs = cell.probe_records()
        out = {}
        for m in ("bg_psnr", "bg_ssim"):
            pos = [k for k, r in enumerate(recs) if r.get(m) is not None]
            out[(m, "")] = (pos, np.array([recs[k][m] for k in pos], np.float64))
        return out

    def aggregate(self, cell) -> list[Row]:
        return mean_rows(cell, self.per_image(cell))
