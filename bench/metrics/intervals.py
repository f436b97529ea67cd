"""95 % intervals for the benchmark's numbers (``../shared/docs/metrics.md``, *Uncertainty*).

Probes of one person are not independent (same face, same hair, same photo session), so rates and
means over images are bootstrapped over *identities*: each replicate draws identities with
replacement and recomputes the ratio of sums. A proportion over independent items gets a Wilson
score interval. Both are percentile intervals at 95 %.
"""
from __future__ import annotations

import math

import numpy as np

N_BOOT = 2000
Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion k / n.

    Example:
        >>> [round(x, 3) for x in wilson(8, 10)]
        [0.49, 0.943]
    """
    if n <= 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _group_sums(values: np.ndarray, groups) -> tuple[np.ndarray, np.ndarray]:
    """Per-group sums of ``values`` (..., N) and per-group counts, groups in first-seen order."""
    _, inv = np.unique(np.asarray(groups), return_inverse=True)
    k = inv.max() + 1 if len(inv) else 0
    v = np.atleast_2d(np.asarray(values, np.float64))
    sums = np.stack([np.bincount(inv, weights=row, minlength=k) for row in v])
    counts = np.bincount(inv, minlength=k).astype(np.float64)
    return sums, counts


def bootstrap_replicates(values, groups, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """(n_boot, R) replicates of sum(values) / count under resampling of ``groups``.

    ``values`` is (N,) or (R, N): R statistics over the same N items (e.g. one row per recognizer),
    resampled *jointly* so that a maximum over rows can be bootstrapped too.
    """
    sums, counts = _group_sums(values, groups)
    k = len(counts)
    if k == 0:
        return np.full((n_boot, sums.shape[0]), np.nan)
    rng = np.random.default_rng(seed)
    w = rng.multinomial(k, np.full(k, 1.0 / k), size=n_boot).astype(np.float64)  # (B, k) draws per group
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ sums.T) / (w @ counts)[:, None]


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    r = np.asarray(replicates, np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(r, a)), float(np.quantile(r, 1 - a))


def bootstrap_mean(values, groups, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float]:
    """Identity-bootstrap 95 % interval of the mean of ``values`` (a rate when they are 0/1).

    Example:
        >>> lo, hi = bootstrap_mean([1, 1, 0, 0, 1, 0], ["a", "a", "b", "b", "c", "c"], seed=0)
        >>> 0 <= lo <= 0.5 <= hi <= 1
        True
    """
    return percentile_interval(bootstrap_replicates(values, groups, n_boot, seed)[:, 0])


def bootstrap_max(values_per_row, groups, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float]:
    """Interval of max over rows of the per-row means (the strongest of several attackers)."""
    reps = bootstrap_replicates(values_per_row, groups, n_boot, seed)
    return percentile_interval(np.nanmax(reps, axis=1))


def cell_seed(*parts) -> int:
    """A fixed bootstrap seed per cell, so that intervals are reproducible."""
    import hashlib

    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:4], "little")
