"""Empirical differential-privacy audits of the identity-coordinate mechanism and of its sampler.

:func:`audit` (the whole mechanism): two neighbouring inputs at opposite corners of the bounds
(every coordinate at ``lo`` vs every coordinate at ``hi``), ``n`` releases of the mechanism on each,
and the best threshold test on a scalar statistic. The statistic is the sum over components of the
release clipped to the bounds and scaled to [0, 1]: for Laplace noise this is the likelihood-ratio
statistic, the most powerful one. The threshold is chosen on one half of the samples and
evaluated on the other half, with Clopper-Pearson intervals, so that the reported lower bound on
ε holds with confidence ``1 - alpha`` (two one-sided intervals, Bonferroni). A correct ε-DP
mechanism gives a lower bound <= ε except with probability alpha; a mechanism with half the
claimed noise scale (true loss 2ε) gives a bound above ε when n is large enough (about 10^6
releases per input at ε = 1: the largest likelihood ratios need all 16 components in their tails).

:func:`audit_sampler` (one component): the same threshold audit of one discrete Laplace
measurement at a component's integer sensitivity and scale, against OpenDP's privacy map. Every
draw is informative, so it needs about 16 times fewer draws per input than :func:`audit`, and it
can afford OpenDP's secure sampler (about 5·10^4 draws per second) at KPDP's own scales.

:func:`discrete_laplace_gof`: chi-square goodness of fit of integer noise to the exact discrete
Laplace law of the claimed scale.

Samplers are built by a ``make_sampler(mode, seed)`` factory (default :class:`IntegerLaplace`), so
the tests can audit a deliberately broken sampler without any test hook in the production path.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta, chisquare

from .mechanism import GRID_STEPS, release
from .sampler import IntegerLaplace, opendp_epsilon
from .space import IdentitySpace


@dataclass
class AuditResult:
    eps_claimed: float
    eps_lower_bound: float
    threshold: float
    n: int
    mode: str

    @property
    def violation(self) -> bool:
        return self.eps_lower_bound > self.eps_claimed


def clopper_pearson(k: int, n: int, alpha: float) -> tuple[float, float]:
    lo = 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha, k + 1, n - k))
    return lo, hi


def statistic(noisy: np.ndarray) -> np.ndarray:
    return (np.clip(noisy, 0, GRID_STEPS) / GRID_STEPS).sum(axis=1)


def eps_lower_bound(t0: np.ndarray, t1: np.ndarray, alpha: float = 1e-3) -> tuple[float, float]:
    """Lower bound on ε (confidence ``1 - alpha``) from scalar statistics of releases on two
    neighbouring inputs: ``t0`` on one, ``t1`` on the other, larger values pointing to ``t1``.
    The threshold is chosen on the first half of each sample, the bound computed on the second
    half. Returns ``(lower_bound, threshold)``. Generic: any mechanism's audit goes through it."""
    half = min(len(t0), len(t1)) // 2
    a0, b0, a1, b1 = t0[:half], t0[half:2 * half], t1[:half], t1[half:2 * half]
    # candidate thresholds dense in the upper tail, where the largest likelihood ratios live
    cands = np.unique(np.quantile(np.concatenate([a0, a1]), 1 - np.logspace(-5.5, -0.01, 300)))
    best, best_tau = -np.inf, float(cands[0])
    s0, s1 = np.sort(a0), np.sort(a1)
    for tau in cands:  # choose on the first half the threshold whose *conservative* bound is best
        k1 = len(s1) - np.searchsorted(s1, tau, side="left")
        k0 = len(s0) - np.searchsorted(s0, tau, side="left")
        lo1, _ = clopper_pearson(int(k1), half, alpha / 2)
        _, hi0 = clopper_pearson(int(k0), half, alpha / 2)
        if lo1 > 0 and math.log(lo1 / hi0) > best:
            best, best_tau = math.log(lo1 / hi0), float(tau)
    k1, k0, m = int((b1 >= best_tau).sum()), int((b0 >= best_tau).sum()), len(b0)
    lo1, _ = clopper_pearson(k1, m, alpha / 2)
    _, hi0 = clopper_pearson(k0, m, alpha / 2)
    lb = max(0.0, math.log(lo1 / hi0)) if lo1 > 0 else 0.0
    return lb, best_tau


def audit(space: IdentitySpace, eps: float, n: int, mode: str = "seeded", seed: int = 0, alpha: float = 1e-3,
          make_sampler: Callable[[str, int | None], IntegerLaplace] = IntegerLaplace) -> AuditResult:
    """Audit of :func:`kpdp.mechanism.release` at ``eps``: ``n`` releases on each input, each input
    with its own sampler ``make_sampler(mode, seed)`` / ``(mode, seed + 1)`` (seed ``None`` in secure
    mode)."""
    def sample(x, s):
        sampler = make_sampler(mode, s if mode == "seeded" else None)
        return statistic(release(np.repeat(x[None], n, 0), space, eps, sampler))

    lb, tau = eps_lower_bound(sample(space.lo, seed), sample(space.hi, seed + 1), alpha)
    return AuditResult(float(eps), lb, tau, n, mode)


def audit_sampler(sampler: IntegerLaplace, sensitivity: int, scale: float, n: int,
                  alpha: float = 1e-3) -> AuditResult:
    """Threshold audit of one discrete Laplace measurement as a sampler releases it: neighbouring
    integer inputs ``0`` and ``sensitivity``, ``n`` releases of ``input + sampler.noise(scale)`` on
    each, statistic = release clipped to ``[0, sensitivity]``. The claim is OpenDP's privacy map
    at that sensitivity and scale (``sensitivity / scale``)."""
    d = int(sensitivity)

    def sample(x):
        return np.clip(x + sampler.noise(scale, (n,)), 0, d) / d

    lb, tau = eps_lower_bound(sample(0), sample(d), alpha)
    return AuditResult(opendp_epsilon(d, scale), lb, tau, n, sampler.mode)


def discrete_laplace_cdf(k: np.ndarray, scale: float) -> np.ndarray:
    """``P(Z <= k)`` for integer ``k`` under ``P(z) = (1 - q) / (1 + q) q^|z|``, ``q = exp(-1/scale)``."""
    k = np.asarray(k, np.float64)
    q = math.exp(-1.0 / scale)
    tail = np.exp(-np.abs(k + (k >= 0)) / scale) / (1 + q)  # q^(k+1)/(1+q) for k >= 0, q^-k/(1+q) below
    return np.where(k >= 0, 1 - tail, tail)


def discrete_laplace_gof(z: np.ndarray, scale: float, bins: int = 40) -> tuple[float, float]:
    """Chi-square goodness of fit of integer samples ``z`` to the exact discrete Laplace law of
    scale ``scale``: ``bins`` cells of (nearly) equal probability, the scale not fitted. Returns
    ``(chi-square statistic, p-value)``; a small p-value rejects the claimed law (for instance
    noise of half the claimed scale)."""
    z = np.asarray(z)
    u = np.arange(1, bins) / bins
    # cut points: the continuous Laplace quantiles, floored to integers (any cuts are valid; these
    # make the cells about equally likely); cell i holds cuts[i-1] < z <= cuts[i]
    cuts = np.unique(np.floor(np.where(u < 0.5, scale * np.log(2 * u), -scale * np.log(2 * (1 - u)))))
    cdf = np.concatenate([[0.0], discrete_laplace_cdf(cuts, scale), [1.0]])
    expected = np.diff(cdf) * len(z)
    observed = np.bincount(np.searchsorted(cuts, z, side="left"), minlength=len(cuts) + 1)
    keep = expected > 0
    res = chisquare(observed[keep], expected[keep] * observed[keep].sum() / expected[keep].sum())
    return float(res.statistic), float(res.pvalue)
