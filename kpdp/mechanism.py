"""The ε-differentially-private mechanism on the 16 identity coordinates (spec section 3).

Per face: encode (Procrustes pose, 16 coordinates, residual), clip each coordinate into its frozen
bounds ``[lo_k, hi_k]`` and snap it to a grid of ``GRID_STEPS`` steps across the bounds, add
discrete Laplace noise (:mod:`kpdp.sampler`) of scale ``Δ_k / ε_k`` (in coordinate units): that
noisy grid value is the ε-DP release (:func:`release`). It is then post-processed back into the
bounds, by default with the posterior mean under a public prior (:func:`posterior_mean`; the
spec's plain clamp is ``postprocess="clamp"``), and decoded with the untouched pose and residual.

What the guarantee covers: the released 16 identity coordinates of one face satisfy ε-local DP
(any two faces are neighbours; sequential composition over the 16 components with ``Σ ε_k = ε``;
clamping and decoding are post-processing). What it does not cover: the pose and the residual
(expression, detector noise), which are released as they are, and every pixel of the image, which
the generator draws from the masked original: the image's privacy is measured, not guaranteed.
Each released image of the same person spends another ε.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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


def clamp(noisy: np.ndarray, space: IdentitySpace) -> np.ndarray:
    """Post-processing of the spec: clamp into the bounds."""
    return from_grid(np.clip(noisy, 0, GRID_STEPS), space.lo, space.sensitivity / GRID_STEPS)


def posterior_mean(noisy: np.ndarray, space: IdentitySpace, eps_k: np.ndarray) -> np.ndarray:
    """Post-processing that uses only public, frozen statistics: the mean of each coordinate given
    its noisy release, under a Gaussian prior (the training coordinates' mean and spread,
    truncated to the bounds) and the known discrete Laplace noise. At small ε this pulls the
    geometry towards the population's (a natural face) instead of piling it onto the corners of the
    bounds as clamping does; at large ε it returns the released value. Being post-processing of
    the ε-DP release, it keeps the guarantee."""
    grid = np.arange(GRID_STEPS + 1, dtype=np.float64)  # (G,)
    step = space.sensitivity / GRID_STEPS
    values = space.lo[:, None] + grid[None] * step[:, None]  # (16, G)
    log_prior = -0.5 * ((values - space.prior_mean[:, None]) / space.prior_std[:, None]) ** 2
    t = GRID_STEPS / eps_k  # noise scale in steps, per component
    log_lik = -np.abs(noisy[:, :, None] - grid[None, None]) / t[None, :, None]  # (N, 16, G)
    logw = log_lik + log_prior[None]
    w = np.exp(logw - logw.max(-1, keepdims=True))
    return (w * values[None]).sum(-1) / w.sum(-1)


POSTPROCESS = ("posterior", "clamp")


def privatize_coords(coords: np.ndarray, space: IdentitySpace, eps: float, sampler: IntegerLaplace,
                     split: str = "uniform", postprocess: str = "posterior") -> np.ndarray:
    """(N, 16) -> (N, 16) released coordinates, inside the bounds."""
    eps = check_eps(eps)
    if math.isinf(eps):
        return np.array(coords, np.float64)  # no privacy at ε = ∞: values pass through unclipped
    noisy = release(coords, space, eps, sampler, split)
    if postprocess == "clamp":
        return clamp(noisy, space)
    if postprocess == "posterior":
        return posterior_mean(noisy, space, budget_split(space, eps, split))
    raise ValueError(f"unknown post-processing '{postprocess}'; valid: {', '.join(POSTPROCESS)}")


def privatize(landmarks: np.ndarray, eps: float, seed: int | None = None, mode: str | None = None,
              space: IdentitySpace | None = None, split: str = "uniform",
              postprocess: str = "posterior") -> PrivatizeResult:
    """Privatise a batch of 68-point landmark sets.

    Args:
        landmarks: ``(N, 68, 2)`` or ``(68, 2)`` pixel coordinates (iBUG order).
        eps: privacy budget per face (``float('inf')`` = no noise, landmarks returned unchanged).
        seed: with a seed the noise is ``seeded`` (reproducible, not a private release);
            without, ``secure`` (OpenDP, operating-system randomness).
        mode: force ``secure`` or ``seeded``.

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
    out = np.stack([space.decode(c, r, p) for c, (_, r, p) in zip(released, enc)])
    eps_k = np.zeros(len(space.lo)) if math.isinf(eps) else budget_split(space, eps, split)
    return PrivatizeResult(out, coords, released, eps_k, eps, mode, seed if mode == "seeded" else None)


_DEFAULT: IdentitySpace | None = None


def default_space() -> IdentitySpace:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = IdentitySpace.load()
    return _DEFAULT
