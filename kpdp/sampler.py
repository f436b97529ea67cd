"""Floating-point-safe noise: discrete Laplace on an integer grid (one implementation, shared by
the KPDP mechanism and DP-Pix), with its privacy checked by OpenDP's privacy map.

Why not ``loc + scale * log(u)``: the set of floats that textbook sampler can output depends on
the input, and an observer can tell inputs apart from the output's low bits (Mironov, CCS 2012).
Here the private value is first mapped to an integer grid index, integer noise is added, and only
the resulting integer is turned back into a float by a fixed map. The output therefore depends on
the input only through an integer, and the integer noise has the exact discrete Laplace law
``P(z) = (1 - q) / (1 + q) q^|z|``, ``q = exp(-1 / t)``: an integer L1 sensitivity ``d`` costs
``d / t`` of privacy budget.

The privacy claim is not taken on trust: :meth:`IntegerLaplace.check_privacy` asks OpenDP's
privacy map of the discrete Laplace measurement at scale ``t`` what a sensitivity of ``d`` costs,
and raises unless that is within the ε the caller spends (:func:`opendp_epsilon`).

Two modes sample that same law:

- ``secure``: OpenDP's discrete Laplace (``opendp.measurements.make_laplace`` on
  ``vector_domain(atom_domain(T="i64"))`` with ``l1_distance(T="i64")``), drawing from the operating
  system's randomness; cannot be seeded. The default of the anonymiser's own API/CLI. In the
  installed OpenDP (0.16) that constructor, like every OpenDP measurement, requires the ``contrib``
  feature: "contrib" means its proof has not completed OpenDP's vetting process. Only ``contrib``
  is enabled, only while the measurement is constructed (:func:`_laplace_measurement`), and not
  ``floating-point`` or ``honest-but-curious``.
- ``seeded``: the difference of two geometric variables (which is discrete Laplace) drawn from a
  seeded NumPy ``Generator``; reproducible, for benchmarks. The default inside ``bench``, which
  records the mode in its results. Anyone who knows the seed can subtract the noise: a seeded run
  is a measurement of the method, not a private release. Its privacy check uses the same OpenDP
  map (the law is the same; tests/kpdp/test_sampler.py tests both samplers against it).
"""
from __future__ import annotations

import functools
import math

import numpy as np

MODES = ("secure", "seeded")

# Slack allowed between OpenDP's privacy map and the ε a caller claims. OpenDP evaluates the map
# d / t in f64 rounded towards +∞ (conservative arithmetic), and the caller's own ε_k = ε / 16 and
# t = d / ε_k carry round-off, so the map can exceed the caller's float ε by a few ulps (~1e-16
# relative). 1e-9 absorbs millions of ulps and is still a billionth of the budget: any real error
# in the scale (half the noise: twice the map) fails by orders of magnitude.
EPS_REL_TOL = 1e-9


@functools.lru_cache(maxsize=256)
def _laplace_measurement(scale: float):
    """OpenDP's discrete Laplace measurement on integer vectors (L1 distance) at ``scale``."""
    import opendp.mod
    import opendp.prelude as dp

    had_contrib = "contrib" in opendp.mod.GLOBAL_FEATURES
    dp.enable_features("contrib")  # make_laplace is a contrib component in OpenDP 0.16
    try:
        return dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"),
                                 scale=float(scale))
    finally:
        if not had_contrib:  # leave the process's feature set as it was
            dp.disable_features("contrib")


def _integer_sensitivity(sensitivity) -> int:
    """The sensitivity as an ``int`` (OpenDP's integer L1 distance takes no fractions)."""
    if isinstance(sensitivity, (float, np.floating)) and float(sensitivity).is_integer():
        sensitivity = int(sensitivity)
    if isinstance(sensitivity, (bool, np.bool_)) or not isinstance(sensitivity, (int, np.integer)) or sensitivity < 0:
        raise ValueError(f"the sensitivity must be a whole number of grid steps >= 0, got {sensitivity!r}")
    return int(sensitivity)


def opendp_epsilon(sensitivity: int, scale: float) -> float:
    """OpenDP's privacy map: the ε (pure DP, max divergence) that the discrete Laplace
    measurement of scale ``scale`` spends on inputs at L1 distance ``sensitivity`` (integer)."""
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"noise scale must be positive and finite, got {scale!r}")
    return float(_laplace_measurement(float(scale)).map(_integer_sensitivity(sensitivity)))


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

    def check_privacy(self, sensitivity: int, scale: float | np.ndarray, eps: float | np.ndarray) -> np.ndarray:
        """Check the privacy claim of noise of scale ``scale`` on a query of integer L1 sensitivity
        ``sensitivity`` (grid steps): OpenDP's privacy map of the measurement at that scale must
        be at most ``eps`` (relative slack :data:`EPS_REL_TOL`), else ``ValueError``. ``scale`` and
        ``eps`` broadcast against each other (one check per element). Returns the ε that OpenDP's
        map gives (float array of the broadcast shape). In secure mode the map is that of the very
        measurement object :meth:`noise` draws from; in seeded mode that of the same law."""
        scale, eps = np.broadcast_arrays(np.asarray(scale, np.float64), np.asarray(eps, np.float64))
        d = _integer_sensitivity(sensitivity)
        spent = np.empty(scale.shape)
        for t in np.unique(scale):
            spent[scale == t] = opendp_epsilon(d, float(t))
        bad = ~(spent <= eps * (1 + EPS_REL_TOL))
        if np.any(bad):
            i = np.flatnonzero(bad.ravel())[0]
            raise ValueError(f"privacy check failed: OpenDP's privacy map of discrete Laplace noise of scale "
                             f"{float(scale.ravel()[i])!r} at sensitivity {d} is ε = {float(spent.ravel()[i])!r}, "
                             f"more than the claimed {float(eps.ravel()[i])!r}")
        return spent

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
        return np.asarray(_laplace_measurement(t)([0] * n), dtype=np.int64)


def to_grid(x: np.ndarray, lo: np.ndarray, step: np.ndarray, n_steps: int) -> np.ndarray:
    """Clip to ``[lo, lo + n_steps * step]`` and round to the nearest grid index (int64)."""
    idx = np.rint((np.asarray(x, np.float64) - lo) / step)
    return np.clip(idx, 0, n_steps).astype(np.int64)


def from_grid(idx: np.ndarray, lo: np.ndarray, step: np.ndarray) -> np.ndarray:
    return lo + idx.astype(np.float64) * step
