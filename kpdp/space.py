"""The keypoint identity space (spec section 2): Procrustes, PCA + Fisher LDA, 16 components.

A fitted :class:`IdentitySpace` is a handful of frozen arrays (mean shape, mean vector ``mu``,
``W`` 136 x 16, its pseudo-inverse, per-component bounds and Fisher ratios) stored as a
safetensors file whose metadata holds the format version, the fit's provenance and a hash of the
arrays. Nothing at anonymisation time depends on anyone else's data.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import frozen
from .faces.geometry import apply_affine, check_landmarks, umeyama

FORMAT_VERSION = "2"
N_COMPONENTS = 16
DEFAULT_PATH = Path(__file__).parent / "assets" / "identity_space.safetensors"
_ARRAYS = ("mean_shape", "mu", "W", "W_pinv", "lo", "hi", "fisher_ratio", "prior_mean", "prior_std")


def normalise(landmarks: np.ndarray, mean_shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Similarity-align one (68, 2) set onto the mean shape: returns (136-vector, 2x3 transform).

    The transform (pose: translation, rotation, scale) is kept and is *not* privatised."""
    lm = check_landmarks(landmarks)
    m = umeyama(lm, mean_shape)
    return apply_affine(m, lm).reshape(-1), m


def generalised_procrustes(shapes: np.ndarray, iters: int = 10) -> np.ndarray:
    """Mean shape (68, 2), centred, unit Frobenius norm, of (N, 68, 2) landmark sets."""
    mean = shapes[0] - shapes[0].mean(0)
    mean /= np.linalg.norm(mean)
    for _ in range(iters):
        aligned = np.stack([apply_affine(umeyama(s, mean), s) for s in shapes])
        new = aligned.mean(0)
        new -= new.mean(0)
        new /= np.linalg.norm(new)
        # keep the reference orientation fixed so the iteration does not drift in rotation
        new = apply_affine(umeyama(new, mean), new)
        new /= np.linalg.norm(new)
        done = np.linalg.norm(new - mean) < 1e-10
        mean = new
        if done:
            break
    return mean


@dataclass
class IdentitySpace:
    mean_shape: np.ndarray  # (68, 2)
    mu: np.ndarray  # (136,)
    W: np.ndarray  # (136, 16)
    W_pinv: np.ndarray  # (16, 136)
    lo: np.ndarray  # (16,)
    hi: np.ndarray  # (16,)
    fisher_ratio: np.ndarray  # (16,) between / within identity variance on the training set
    prior_mean: np.ndarray  # (16,) mean of the training coordinates (public prior for denoising)
    prior_std: np.ndarray  # (16,) their standard deviation
    meta: dict = field(default_factory=dict)

    @property
    def sensitivity(self) -> np.ndarray:
        """L1 sensitivity of each component under local DP: the width of its bounds."""
        return self.hi - self.lo

    def encode(self, landmarks: np.ndarray):
        """(68, 2) -> (coords (16,), residual (136,), pose 2x3)."""
        s, pose = normalise(landmarks, self.mean_shape)
        c = self.W_pinv @ (s - self.mu)
        return c, s - self.mu - self.W @ c, pose

    def decode(self, coords: np.ndarray, residual: np.ndarray, pose: np.ndarray) -> np.ndarray:
        s = self.mu + self.W @ coords + residual
        inv = np.linalg.inv(np.vstack([pose, [0, 0, 1]]))[:2]
        return apply_affine(inv, s.reshape(68, 2))

    def coords(self, landmarks: np.ndarray) -> np.ndarray:
        """(N, 68, 2) -> (N, 16) identity coordinates."""
        return np.stack([self.encode(lm)[0] for lm in landmarks])

    def _arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in _ARRAYS}

    def digest(self) -> str:
        return frozen.arrays_digest(self._arrays())

    def save(self, path: Path) -> str:
        return frozen.save(path, self._arrays(), self.meta, FORMAT_VERSION)

    @classmethod
    def load(cls, path: Path | str | None = None) -> "IdentitySpace":
        path = Path(path) if path else DEFAULT_PATH
        arrays, meta = frozen.load(path, _ARRAYS, FORMAT_VERSION,
                                   f"identity space file {path} not found (fit one with `python -m kpdp fit-space`)")
        return cls(**arrays, meta=meta)


def fisher_ratios(coords: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per column: variance of identity means / mean within-identity variance."""
    ids = np.unique(labels)
    means = np.stack([coords[labels == i].mean(0) for i in ids])
    within = np.concatenate([coords[labels == i] - means[k] for k, i in enumerate(ids)])
    return means.var(0) / within.var(0)


def fit(landmarks: np.ndarray, identities: np.ndarray, n_pca: int = 48, quantile: float = 0.005,
        meta: dict | None = None) -> IdentitySpace:
    """Fit on identity-labelled (N, 68, 2) landmarks; LDA uses people with 2+ images.

    PCA keeps ``n_pca`` components (136 numbers have 4 similarity degrees of freedom removed, and
    the last PCA directions are detector noise). Fisher LDA (scikit-learn, eigen solver with
    shrinkage) then gives directions sorted by between / within identity variance; the first 16
    are the identity components."""
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    landmarks = np.asarray(landmarks, np.float64)
    identities = np.asarray(identities)
    mean_shape = generalised_procrustes(landmarks)
    S = np.stack([normalise(lm, mean_shape)[0] for lm in landmarks])
    mu = S.mean(0)
    pca = PCA(n_components=n_pca, random_state=0).fit(S - mu)
    Z = pca.transform(S - mu)
    ids, counts = np.unique(identities, return_counts=True)
    multi = np.isin(identities, ids[counts >= 2])
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto").fit(Z[multi], identities[multi])
    W = pca.components_.T @ lda.scalings_[:, :N_COMPONENTS]  # 136 x 16
    W /= np.linalg.norm(W, axis=0, keepdims=True)  # unit directions: coordinates in shape units
    W_pinv = np.linalg.pinv(W)
    C = (S - mu) @ W_pinv.T
    lo, hi = np.quantile(C, quantile, axis=0), np.quantile(C, 1 - quantile, axis=0)
    ratio = fisher_ratios(C[multi], identities[multi])
    order = np.argsort(-ratio)  # components sorted by Fisher ratio on the training set
    W, W_pinv, C, lo, hi, ratio = W[:, order], W_pinv[order], C[:, order], lo[order], hi[order], ratio[order]
    meta = {**(meta or {}), "n_images": len(S), "n_identities": len(ids), "n_lda_images": int(multi.sum()),
            "n_pca": n_pca, "bound_quantiles": json.dumps([quantile, 1 - quantile])}
    return IdentitySpace(mean_shape, mu, W, W_pinv, lo, hi, ratio, C.mean(0), C.std(0), meta)
