"""Seams at the edge of what a method changed: is the pasted region lighter, darker or of another
colour than what surrounds it (a halo, a ring), beyond what the original had at the same place?

The edge is the boundary of the changed pixels (``anonymised != original``), for every method
alike. Around it lie an inner ring (``width`` pixels inside) and an outer ring (``width`` outside),
``width`` 5 % of the changed region's size (at least 3 px). In each of :data:`SECTORS` angular
sectors around the region's centre, the *step* is the mean grey level of the inner ring minus the
outer ring's; ``seam_step`` is the mean over sectors of ``|step(anonymised) - step(original)|`` in
grey levels (0-255): 0 when the paste continues the skin around it as the original face did, 40
for a face drawn 40 levels lighter than its surroundings. Per sector, so that a side drawn lighter
and another drawn darker do not cancel. An image with no changed pixel has no seam: left out.

``seam_edge_ratio`` asks the same question the way a reader of a "within 20 % of the original"
target needs it, as a ratio to something the original has: the *edge energy* of an image is the
mean absolute grey gradient across the edge (projected on the edge's normal) over both rings; the
ratio is the mean edge energy of the anonymised images over the mean of their originals', on the
same pixels. 1 when the paste crosses the edge as the photo did; a ring or a halo adds gradient
across the edge and raises it (1.2: 20 % more than the original); a smoothed edge (blur) lowers it.
Across the edge only, so that texture along it (a hairline, the jaw) counts alike in both images.
"""
from __future__ import annotations

import cv2
import numpy as np

from bench.metrics.intervals import bootstrap_replicates, percentile_interval
from bench.metrics.registry import (MetricGroup, MetricSpec, Paired, PerImage, Row, identities_by_image, mean_rows,
                                    register_group)

SECTORS = 16
MIN_WIDTH = 3


def rings(changed: np.ndarray, width: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(inner ring, outer ring, width) of a changed region."""
    c = changed.astype(np.uint8)
    if width is None:
        width = max(MIN_WIDTH, int(round(0.05 * np.sqrt(c.sum()))))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    inner = changed & ~cv2.erode(c, k).astype(bool)
    outer = cv2.dilate(c, k).astype(bool) & ~changed
    return inner, outer, width


def changed_region(original: np.ndarray, anonymised: np.ndarray) -> np.ndarray:
    """Boolean mask of the pixels a method changed (any channel)."""
    return (original != anonymised).any(-1) if original.ndim == 3 else original != anonymised


def _grey(image: np.ndarray, dtype=np.float64) -> np.ndarray:
    return image.astype(dtype).mean(-1) if image.ndim == 3 else image.astype(dtype)


def seam_step(original: np.ndarray, anonymised: np.ndarray, width: int | None = None) -> float | None:
    """Mean over sectors of the inner-minus-outer grey step, anonymised against original; None
    when nothing changed.

    Example:
        >>> y, x = np.mgrid[:80, :80]
        >>> o = np.dstack([60 + x, 80 + y, 100 + (x + y) // 2]).astype(np.uint8)
        >>> inside = (x - 40) ** 2 / 20 ** 2 + (y - 40) ** 2 / 25 ** 2 < 1
        >>> lighter = o.copy(); lighter[inside] += 40  # a face drawn 40 levels lighter than the skin
        >>> same = o.copy(); same[inside] += 1  # a paste that continues the skin
        >>> round(seam_step(o, lighter)), round(seam_step(o, same))
        (40, 1)
    """
    changed = changed_region(original, anonymised)
    if not changed.any():
        return None
    inner, outer, _ = rings(changed, width)
    ys, xs = np.nonzero(changed)
    h, w = changed.shape
    gy, gx = np.mgrid[:h, :w]
    sector = ((np.arctan2(gy - ys.mean(), gx - xs.mean()) + np.pi) / (2 * np.pi) * SECTORS).astype(int) % SECTORS
    grey_o, grey_a = _grey(original), _grey(anonymised)
    steps = []
    for s in range(SECTORS):
        i, o = inner & (sector == s), outer & (sector == s)
        if i.any() and o.any():
            steps.append(abs((grey_a[i].mean() - grey_a[o].mean()) - (grey_o[i].mean() - grey_o[o].mean())))
    return float(np.mean(steps)) if steps else None


def edge_energies(changed: np.ndarray, *images: np.ndarray, width: int | None = None) -> tuple[float, ...] | None:
    """Mean |grey gradient . edge normal| of each image over the rings of ``changed`` (grey levels per
    pixel), the edge and its normals found once for all; None when the region has no edge inside the
    image.

    Example:
        >>> y, x = np.mgrid[:80, :80]
        >>> o = np.full((80, 80, 3), 100, np.uint8)
        >>> inside = (x - 40) ** 2 + (y - 40) ** 2 < 20 ** 2
        >>> disc = o.copy(); disc[inside] = 160  # 60 levels lighter: a step of 60 across a 6 px band
        >>> flat, stepped = edge_energies(inside, o, disc)
        >>> flat, round(stepped)
        (0.0, 10)
    """
    inner, outer, width = rings(changed, width)
    soft = cv2.GaussianBlur(changed.astype(np.float32), (0, 0), max(1.0, width / 2))
    ny, nx = cv2.Sobel(soft, cv2.CV_32F, 0, 1), cv2.Sobel(soft, cv2.CV_32F, 1, 0)
    norm = np.hypot(nx, ny)
    band = (inner | outer) & (norm > 1e-3)  # where the region meets the image's border there is no edge
    if not band.any():
        return None
    nx, ny, norm = nx[band], ny[band], norm[band]
    energies = []
    for image in images:
        grey = _grey(image, np.float32)
        gy, gx = cv2.Sobel(grey, cv2.CV_32F, 0, 1) / 8, cv2.Sobel(grey, cv2.CV_32F, 1, 0) / 8
        energies.append(float(np.abs((gx[band] * nx + gy[band] * ny) / norm).mean()))
    return tuple(energies)


def seam_energies(original: np.ndarray, anonymised: np.ndarray) -> tuple[float, float] | None:
    """(edge energy of the anonymised image, of the original) on the edge of what changed; None
    when nothing changed or the edge lies outside the image."""
    changed = changed_region(original, anonymised)
    return edge_energies(changed, anonymised, original) if changed.any() else None


@register_group
class SeamGroup(MetricGroup):
    name = "seam"
    version = "2"
    cached = False  # a few morphology operations: cheaper than a cache round trip
    metrics = (MetricSpec("seam_step", "seam", "", False, "seam step (grey levels)", 2.0,
                          definition="how much lighter, darker or differently coloured the changed "
                                     "region is at its edge than what surrounds it, beyond the "
                                     "original's own step there (a halo or a ring; mean over 16 "
                                     "sectors of a ring inside against a ring outside the edge)",
                          unit="grey levels, 0–255"),
               MetricSpec("seam_edge_ratio", "seam", "", False, "seam edge ratio", 0.1,
                          definition="the grey gradient across the edge of the changed region in the "
                                     "anonymised images over the original's on the same pixels (1: the "
                                     "edge crosses the skin as the photo did; a ring or halo raises it, "
                                     "a blurred edge lowers it)",
                          unit="ratio"),)

    def anonymised(self, ctx):
        original = ctx.image if ctx.original is None else ctx.original
        energies = seam_energies(original, ctx.image)
        return {"seam_step": seam_step(original, ctx.image),
                "seam_edge_energy": None if energies is None else list(energies)}, {}

    def per_image(self, cell) -> PerImage:
        recs = cell.probe_records()
        pos = [k for k, r in enumerate(recs) if r.get("seam_step") is not None]
        return {("seam_step", ""): (pos, np.array([recs[k]["seam_step"] for k in pos], np.float64))}

    def paired(self, cell_a, cell_b, n_boot: int, seed: int) -> dict[tuple[str, str], Paired]:
        """``seam_step`` as a mean, and ``seam_edge_ratio``: each cell's ratio of mean edge energies
        on the images both measured, the same people drawn for all four means."""
        out = super().paired(cell_a, cell_b, n_boot, seed)
        a, b = (_edge_energies(c) for c in (cell_a, cell_b))
        common = [i for i in a if i in b]
        if common and ("seam_step", "") in out:  # aggregate gives the ratio only beside seam_step
            who = identities_by_image(cell_a)
            e = np.array([[a[i][0] for i in common], [a[i][1] for i in common],
                          [b[i][0] for i in common], [b[i][1] for i in common]], np.float64)
            reps = bootstrap_replicates(e, [who[i] for i in common], n_boot, seed)
            out[("seam_edge_ratio", "")] = Paired(
                float(e[0].mean() / e[1].mean()), float(e[2].mean() / e[3].mean()),
                np.stack([reps[:, 0] / reps[:, 1], reps[:, 2] / reps[:, 3]], 1), len(common),
                len({who[i] for i in common}))
        return out

    def aggregate(self, cell) -> list[Row]:
        records = list(zip(cell.probe_records(), cell.probe_identities))
        rows = mean_rows(cell, self.per_image(cell))
        if not rows:
            return []
        energies = [(r["seam_edge_energy"], i) for r, i in records if r.get("seam_edge_energy") is not None]
        if energies:
            e = np.array([x for x, _ in energies], np.float64).T  # (2, N): anonymised, original
            ratio = bootstrap_replicates(e, [i for _, i in energies], seed=cell.boot_seed)
            rows.append(Row("seam_edge_ratio", "", float(e[0].mean() / e[1].mean()), e.shape[1],
                            *percentile_interval(ratio[:, 0] / ratio[:, 1])))
        return rows


def _edge_energies(cell) -> dict:
    """{image id: (anonymised, original) edge energy} of the cell's probes that have them."""
    return {r[0]: r[1]["seam_edge_energy"] for r in cell.probes if r[1].get("seam_edge_energy") is not None}
