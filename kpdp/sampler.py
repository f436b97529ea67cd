"""Floating-point-safe noise: discrete Laplace on an integer grid (one implementation, shared by
the KPDP mechanism and DP-Pix).

Why not ``loc + scale * log(u)``: the set of floats that textbook sampler can output depends on
the input, and an observer can tell inputs apart from the output's low bits (Mironov, CCS 2012).
Here the private value is first mapped to an integer grid index, integer noise is added, and only
the resulting integer is turned back into a float by a fixed map. The output therefore depends on
the input only through an integer, and the integer noise has the exact discrete Laplace law
``P(z) ∝ exp(-|z| / t)``: an integer sensitivity ``k`` costs ``k / t`` of privacy budget.

Two modes sample that same law:

- ``secure``: OpenDP's vetted discrete Laplace (``make_laplace`` on integers), drawing from the
  operating system's randomness; cannot be seeded. The default of the anonymiser's own API/CLI.
- ``seeded``: the difference of two geometric variables (which is discrete Laplace) drawn from a
  seeded NumPy ``Generator``; reproducible, for benchmarks. The default inside ``bench``, which
  records the mode in its results. Anyone who knows the seed can subtract the noise: a seeded run
  is a measurement of the method, not a private release.
"""
from __future__ import annotations

import math

import numpy as np

MODES = ("secure", "seeded")


class IntegerLaplace:
    """Adds discrete Laplace noise of scale ``t`` (in grid steps) to integer arrays."""

    def __init__(self, mode: str = "secure", seed: int | None = None):
        if mode not in MODES:
            raise ValueError(f"unknown noise mode '{mode}'; valid: {', '.join(MODES)}")
        if mode == "seeded" and seed is None:
            raise ValueError("the seeded noise mode needs a seed")
        if mode == "secure" and seed is not None:
            raise ValueError("the secure noise mode draws from the operating system and takes no seed")
        self.mode = mode
        self.seed = seed
        self._rng = np.random.default_rng(seed) if mode == "seeded" else None
        self._opendp: dict[float, object] = {}

    def noise(self, scale: float | np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Integer noise (int64) of the given shape; ``scale`` broadcasts against ``shape``."""
        scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), shape)
        if not np.all(scale > 0) or not np.all(np.isfinite(scale)):
            raise ValueError("noise scale must be positive and finite")
        out = np.empty(shape, dtype=np.int64)
        for t in np.unique(scale):
            sel = scale == t
            out[sel] = self._draw(float(t), int(sel.sum()))
        return out

    def _draw(self, t: float, n: int) -> np.ndarray:
        if self.mode == "seeded":
            # X - Y with X, Y ~ Geometric(p) i.i.d. has P(z) ∝ q^|z|, q = 1 - p = exp(-1/t)
            p = -math.expm1(-1.0 / t)
            return self._rng.geometric(p, n).astype(np.int64) - self._rng.geometric(p, n).astype(np.int64)
        if t not in self._opendp:
            import opendp.prelude as dp

            dp.enable_features("contrib")
            self._opendp[t] = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int),
                                                scale=t)
        return np.asarray(self._opendp[t]([0] * n), dtype=np.int64)


def to_grid(x: np.ndarray, lo: np.ndarray, step: np.ndarray, n_steps: int) -> np.ndarray:
    """Clip to ``[lo, lo + n_steps * step]`` and round to the nearest grid index (int64)."""
    idx = np.rint((np.asarray(x, np.float64) - lo) / step)
    return np.clip(idx, 0, n_steps).astype(np.int64)


def from_grid(idx: np.ndarray, lo: np.ndarray, step: np.ndarray) -> np.ndarray:
    return lo + idx.astype(np.float64) * step
