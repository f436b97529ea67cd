"""The ε-differentially-private mechanism on the 16 identity coordinates (spec section 3).

Per face: encode (Procrustes pose, 16 coordinates, residual), clip each coordinate into its frozen
bounds ``[lo_k, hi_k]`` and snap it to a grid of ``GRID_STEPS`` steps across the bounds, add
discrete Laplace noise (:mod:`kpdp.sampler`) of scale ``Δ_k / ε_k`` (in coordinate units): that
noisy grid value is the ε-DP release (:func:`release`). It is then post-processed back into the
bounds, by default by a draw from its posterior under a public prior (:func:`posterior_sample`: a
different plausible geometry on every release; ``postprocess="mean"`` takes the posterior mean,
``"clamp"`` the spec's plain clamp), and decoded with the untouched pose and what is kept of the
residual (:mod:`kpdp.residual`).

What the guarantee covers: the released 16 identity coordinates of one face satisfy ε-local DP
(any two faces are neighbours; sequential composition over the 16 components with ``Σ ε_k = ε``;
posterior sampling, clamping and decoding are post-processing). What it does not cover: the pose
and the kept part of the residual (expression, head turn), which are released without noise, and
every pixel of the image, which the generator draws from the masked original: the image's privacy
is measured, not guaranteed.
Each released image of the same person spends another ε.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kpdp.residual import MODES, ResidualBasis

from .faces.geometry import check_landmarks
from .sampler import EPS_REL_TOL, IntegerLaplace, from_grid, to_grid
from .space import IdentitySpace

GRID_STEPS = 1024  # grid points across each component's bounds; Δ_k is exactly GRID_STEPS steps
SPLITS = ("uniform", "fisher")


@dataclass
class PrivatizeResult:
    landmarks: np.ndarray  # (N, 68, 2) privatised landmarks in image coordinates
    coords: np.ndarray  # (N, 16) the original identity coordinates (not clipped)
    coords_private: np.ndarray  # (N, 16) the released coordinates
    eps_per_component: np.ndarray  # (16,)
    eps_spent: float  # per face
    mode: str
    seed: int | None


def budget_split(space: IdentitySpace, eps: float, split: str = "uniform") -> np.ndarray:
    """ε_k per component, a fixed function of the frozen statistics. ``uniform``: ε / 16.
    ``fisher``: proportional to the training Fisher ratio (more budget, i.e. less noise, where the
    component carries more identity and so more utility; the total is still ε)."""
    k = len(space.lo)
    if split == "uniform":
        w = np.full(k, 1.0 / k)
    elif split == "fisher":
        w = space.fisher_ratio / space.fisher_ratio.sum()
    else:
        raise ValueError(f"unknown budget split '{split}'; valid: {', '.join(SPLITS)}")
    return eps * w


def check_eps(eps) -> float:
    try:
        eps = float(eps)
    except (TypeError, ValueError):
        raise ValueError(f"ε must be a number, got {eps!r}") from None
    if math.isnan(eps) or eps <= 0:
        raise ValueError(f"ε must be > 0 (or inf for no noise), got {eps}")
    return eps


def release(coords: np.ndarray, space: IdentitySpace, eps: float, sampler: IntegerLaplace,
            split: str = "uniform") -> np.ndarray:
    """The ε-DP release itself: (N, 16) coordinates -> (N, 16) noisy *integer grid indices*
    (clipped, snapped, plus discrete Laplace noise; not yet clamped). Everything after this is
    post-processing. Before any noise is drawn, OpenDP's privacy map of each component's noise
    at the component's integer sensitivity (``GRID_STEPS``) is checked against ``ε_k``, and their
    sum against ``ε`` (:meth:`IntegerLaplace.check_privacy`); a failed check raises ``ValueError``."""
    eps = check_eps(eps)
    eps_k = budget_split(space, eps, split)
    # scale in grid steps: Δ_k / ε_k coordinate units = GRID_STEPS / ε_k steps
    scale = GRID_STEPS / eps_k
    spent = sampler.check_privacy(GRID_STEPS, scale, eps_k)
    if not spent.sum() <= eps * (1 + EPS_REL_TOL):
        raise ValueError(f"privacy check failed: the components spend ε = {float(spent.sum())!r} in all, "
                         f"more than the claimed {eps!r}")
    idx = to_grid(coords, space.lo, space.sensitivity / GRID_STEPS, GRID_STEPS)
    return idx + sampler.noise(scale, idx.shape)


def noise_to_spread(space: IdentitySpace, eps: float, split: str = "uniform") -> np.ndarray:
    """(16,) standard deviation of the noise :func:`release` adds to each coordinate, in units of
    the coordinates' spread over the training photos (the frozen ``prior_std``, which includes each
    person's own variation, so people differ by less); 0 at ε = ∞.

    Why it matters: the noise scale is the *whole* width of a component's bounds over ``ε_k``, and
    the bounds span about five of those standard deviations, so the noise outweighs the
    differences between people until ε reaches the low hundreds (uniform split). Below that, the
    posterior a release leaves is mostly the public prior, whatever ε is.

    Example:
        >>> from kpdp.mechanism import default_space, noise_to_spread
        >>> ratio = noise_to_spread(default_space(), 64.0)
        >>> bool(1.5 < ratio.min() and ratio.max() < 2.0)
        True
    """
    eps = check_eps(eps)
    if math.isinf(eps):
        return np.zeros(len(space.lo))
    t = GRID_STEPS / budget_split(space, eps, split)  # noise scale in grid steps
    q = np.exp(-1.0 / t)
    std_steps = np.sqrt(2 * q) / (1 - q)  # the discrete Laplace law's standard deviation
    return std_steps * (space.sensitivity / GRID_STEPS) / space.prior_std


def clamp(noisy: np.ndarray, space: IdentitySpace) -> np.ndarray:
    """Post-processing of the spec: clamp into the bounds."""
    return from_grid(np.clip(noisy, 0, GRID_STEPS), space.lo, space.sensitivity / GRID_STEPS)


def _posterior_weights(noisy: np.ndarray, space: IdentitySpace, eps_k: np.ndarray):
    """Grid values (16, G) and the unnormalised posterior weights (N, 16, G) of each coordinate given
    its noisy release: a Gaussian prior from the frozen training statistics (the coordinates' mean
    and spread, truncated to the bounds) times the known discrete Laplace likelihood. Public
    statistics and the release only: anything computed from these is post-processing."""
    grid = np.arange(GRID_STEPS + 1, dtype=np.float64)  # (G,)
    step = space.sensitivity / GRID_STEPS
    values = space.lo[:, None] + grid[None] * step[:, None]  # (16, G)
    log_prior = -0.5 * ((values - space.prior_mean[:, None]) / space.prior_std[:, None]) ** 2
    t = GRID_STEPS / eps_k  # noise scale in steps, per component
    logw = -np.abs(noisy[:, :, None] - grid[None, None]) / t[None, :, None] + log_prior[None]  # (N, 16, G)
    return values, np.exp(logw - logw.max(-1, keepdims=True))


def posterior_mean(noisy: np.ndarray, space: IdentitySpace, eps_k: np.ndarray) -> np.ndarray:
    """The mean of each coordinate's posterior given its release. Caveat (measured on LFW devtest):
    at small ε the posterior is nearly the prior, so every release of a photo gets almost the same
    (average) geometry, and an attacker who anonymises the gallery too links them through what the
    mask leaves; :func:`posterior_sample` does not have that problem."""
    values, w = _posterior_weights(noisy, space, eps_k)
    return (w * values[None]).sum(-1) / w.sum(-1)


def posterior_sample(noisy: np.ndarray, space: IdentitySpace, eps_k: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """One draw of each coordinate from its posterior given the release (inverse CDF on the grid).
    A different plausible geometry on every release, as likely as the data allow; the randomness
    is independent of the face, so the draw is post-processing and keeps the ε of the release."""
    values, w = _posterior_weights(noisy, space, eps_k)
    cdf = np.cumsum(w, -1)
    u = rng.random(noisy.shape)[..., None] * cdf[..., -1:]
    idx = np.minimum((cdf < u).sum(-1), GRID_STEPS)  # first grid point whose CDF reaches u
    return np.take_along_axis(np.broadcast_to(values, idx.shape + values.shape[-1:]), idx[..., None], -1)[..., 0]


POSTPROCESS = ("sample", "mean", "clamp")


def postprocess_rng(seed: int | None) -> np.random.Generator:
    """Randomness of posterior sampling: derived from the run's seed (a stream apart from the noise's)
    or, unseeded, from the operating system. It needs no secrecy: it never sees the face."""
    return np.random.default_rng(None if seed is None else np.random.SeedSequence([seed, 0x5A4D]))


def privatize_coords(coords: np.ndarray, space: IdentitySpace, eps: float, sampler: IntegerLaplace,
                     split: str = "uniform", postprocess: str = "sample") -> np.ndarray:
    """(N, 16) -> (N, 16) released coordinates, inside the bounds. Posterior sampling draws from
    :func:`postprocess_rng` of the sampler's seed (the operating system's when unseeded)."""
    eps = check_eps(eps)
    if postprocess not in POSTPROCESS:
        raise ValueError(f"unknown post-processing '{postprocess}'; valid: {', '.join(POSTPROCESS)}")
    if math.isinf(eps):
        return np.array(coords, np.float64)  # no privacy at ε = ∞: values pass through unclipped
    noisy = release(coords, space, eps, sampler, split)
    if postprocess == "clamp":
        return clamp(noisy, space)
    eps_k = budget_split(space, eps, split)
    if postprocess == "mean":
        return posterior_mean(noisy, space, eps_k)
    return posterior_sample(noisy, space, eps_k, postprocess_rng(sampler.seed))


def privatize(landmarks: np.ndarray, eps: float, seed: int | None = None, mode: str | None = None,
              space: IdentitySpace | None = None, split: str = "uniform",
              postprocess: str = "sample", residual: str = "expression") -> PrivatizeResult:
    """Privatise a batch of 68-point landmark sets.

    Args:
        landmarks: ``(N, 68, 2)`` or ``(68, 2)`` pixel coordinates (iBUG order).
        eps: privacy budget per face (``float('inf')`` = no noise, landmarks returned unchanged).
        seed: with a seed the noise is ``seeded`` (reproducible, not a private release);
            without, ``secure`` (OpenDP, operating-system randomness).
        mode: force ``secure`` or ``seeded``.
        postprocess: what is drawn from the ε-DP release: ``sample`` (a draw from the posterior,
            default), ``mean`` (the posterior mean) or ``clamp`` (the release clamped to the bounds).
        residual: what is kept of the landmark residual, released without noise
            (:mod:`kpdp.residual`): ``expression`` (its projection on within-person directions),
            ``full`` or ``none``.

    Example:
        >>> import numpy as np
        >>> from kpdp.mechanism import privatize
        >>> from kpdp.datasets import get_dataset
        >>> lm = np.load(get_dataset("lfw-sample").root / "landmarks.npz")["landmarks"][:2]
        >>> out = privatize(lm, eps=1.0, seed=0)
        >>> out.landmarks.shape, out.eps_spent
        ((2, 68, 2), 1.0)
    """
    space = space or default_space()
    eps = check_eps(eps)
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim == 2:
        lm = lm[None]
    if lm.ndim != 3:
        raise ValueError(f"landmarks must have shape (N, 68, 2) or (68, 2), got {lm.shape}")
    lm = np.stack([check_landmarks(x) for x in lm])
    mode = mode or ("seeded" if seed is not None else "secure")
    sampler = IntegerLaplace(mode, seed if mode == "seeded" else None)
    enc = [space.encode(x) for x in lm]
    coords = np.stack([e[0] for e in enc])
    released = privatize_coords(coords, space, eps, sampler, split, postprocess)
    kept = kept_residual(np.stack([e[1] for e in enc]), residual)
    out = np.stack([space.decode(c, r, p) for c, r, (_, _, p) in zip(released, kept, enc)])
    eps_k = np.zeros(len(space.lo)) if math.isinf(eps) else budget_split(space, eps, split)
    return PrivatizeResult(out, coords, released, eps_k, eps, mode, seed if mode == "seeded" else None)


def kept_residual(residuals: np.ndarray, residual: str) -> np.ndarray:
    """(N, 136) residuals -> what the release keeps of them (see :mod:`kpdp.residual`)."""

    if residual == "full":
        return residuals
    if residual == "none":
        return np.zeros_like(residuals)
    if residual == "expression":
        return default_residual_basis().project(residuals)
    raise ValueError(f"unknown residual mode '{residual}'; valid: {', '.join(MODES)}")


_DEFAULT: IdentitySpace | None = None
_DEFAULT_RESIDUAL = None


def default_residual_basis():
    global _DEFAULT_RESIDUAL
    if _DEFAULT_RESIDUAL is None:

        _DEFAULT_RESIDUAL = ResidualBasis.load()
    return _DEFAULT_RESIDUAL


def default_space() -> IdentitySpace:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = IdentitySpace.load()
    return _DEFAULT
