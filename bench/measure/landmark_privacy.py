"""How much identity KPDP's released geometry carries (``bench landmark-privacy``): rank-1
cross-image identification of people from what the mechanism releases about their landmarks, as
a whole and part by part, per ε, with Wilson intervals and chance level.

The parts (:func:`released_parts`): ``coords`` the 16 identity coordinates after the ε-DP
mechanism and its post-processing; ``residual`` what KPDP keeps of the residual (no noise);
``pose`` the similarity transform (scale, in-plane angle, position; no noise); ``released`` all
of it: the aligned target shape ``μ + W c' + r'`` and the pose.

The attacker (named in the output): the gallery is the same parts of every *original* image, the
probes are the released parts of images of people with 2+ images, own image excluded; each
feature is standardised by the gallery's spread and the nearest gallery image by Euclidean
distance names the person. This is the natural attacker on these numbers, not the strongest
possible one (a learned metric could do better); the image-level attackers of ``bench run`` see
the drawn face as well.
"""
from __future__ import annotations

import math

import numpy as np

from bench.metrics.intervals import wilson
from bench.metrics.reid_scores import reid_rank1
from kpdp.mechanism import kept_residual, privatize_coords
from kpdp.sampler import IntegerLaplace
from kpdp.space import IdentitySpace

PARTS = ("released", "coords", "residual", "pose")
ATTACKER = ("nearest original by standardised Euclidean distance on the same parts of the originals "
            "(cross-image: own image excluded)")


def chance_level(identities: np.ndarray) -> float:
    ids, counts = np.unique(identities, return_counts=True)
    n = dict(zip(ids, counts))
    probes = [i for i in identities if n[i] >= 2]
    return float(np.mean([(n[i] - 1) / (len(identities) - 1) for i in probes]))


def majority_level(identities: np.ndarray) -> float:
    """Rate of an attacker who always names the person with the most images (what a constant
    release, e.g. the posterior mean at small ε, scores under nearest-neighbour matching)."""
    ids, counts = np.unique(identities, return_counts=True)
    probes = counts[counts >= 2]
    return float(probes.max() / probes.sum()) if len(probes) else float("nan")


def _pose_features(pose: np.ndarray) -> np.ndarray:
    """(N, 2, 3) similarity transforms -> (N, 4): log scale, angle, translation."""
    a, b = pose[:, 0, 0], pose[:, 1, 0]
    return np.stack([np.log(np.hypot(a, b)), np.arctan2(b, a), pose[:, 0, 2], pose[:, 1, 2]], 1)


def encode_all(landmarks: np.ndarray, space: IdentitySpace):
    enc = [space.encode(x) for x in landmarks]
    return (np.stack([e[0] for e in enc]), np.stack([e[1] for e in enc]), np.stack([e[2] for e in enc]))


def released_parts(coords, residuals, poses, space: IdentitySpace, residual: str) -> dict[str, np.ndarray]:
    kept = kept_residual(residuals, residual)
    pose = _pose_features(poses)
    shape = space.mu + coords @ space.W.T + kept
    return {"coords": coords, "residual": kept, "pose": pose, "released": np.hstack([shape, pose])}


def identify(probe: np.ndarray, gallery: np.ndarray, identities: np.ndarray) -> dict:
    scale = gallery.std(0)
    if np.all(scale < 1e-12):  # nothing released (e.g. residual="none"): every distance ties, no rate
        return {"rank1": math.nan, "lo": math.nan, "hi": math.nan, "n": 0}
    scale[scale < 1e-12] = 1.0  # a constant feature carries nothing
    r = reid_rank1(probe / scale, identities, np.arange(len(identities)), gallery / scale, identities,
                   similarity="neg_euclidean")
    k = int(round(r.value * r.n)) if r.n else 0
    lo, hi = wilson(k, r.n) if r.n else (math.nan, math.nan)
    return {"rank1": r.value, "lo": lo, "hi": hi, "n": r.n}


def landmark_identification(landmarks: np.ndarray, identities: np.ndarray, eps_list, seed: int = 0,
                            space: IdentitySpace | None = None, postprocess: str = "sample",
                            residual: str = "expression", parts=PARTS) -> list[dict]:
    """One row per (ε, part): rank-1 with its interval (see the module's docstring)."""
    space = space or IdentitySpace.load()
    identities = np.asarray(identities)
    coords, residuals, poses = encode_all(np.asarray(landmarks, np.float64), space)
    gallery = released_parts(coords, residuals, poses, space, residual)
    out = []
    for eps in eps_list:
        released = privatize_coords(coords, space, eps, IntegerLaplace("seeded", seed), postprocess=postprocess)
        probe = released_parts(released, residuals, poses, space, residual)
        for part in parts:
            out.append({"eps": eps, "part": part, "residual": residual, "postprocess": postprocess,
                        **identify(probe[part], gallery[part], identities)})
    return out
