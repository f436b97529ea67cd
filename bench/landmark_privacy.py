"""How much identity the face geometry alone carries, and how ε removes it (``bench
landmark-privacy``): rank-1 cross-image identification of people from the 16 identity
coordinates of their landmarks, original vs after the mechanism, with chance level.

Gallery: identity coordinates of every original image; probes: the (privatised) coordinates of
images of people with 2+ images, own original excluded; similarity: negative Euclidean distance
after scaling each coordinate by its training spread (the space's public prior), the natural
attacker on these coordinates.
"""
from __future__ import annotations

import numpy as np

from kpdp.mechanism import privatize_coords
from kpdp.sampler import IntegerLaplace
from kpdp.space import IdentitySpace

from .metrics.reid import reid_rank1


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


def landmark_identification(landmarks: np.ndarray, identities: np.ndarray, eps_list, seed: int = 0,
                            space: IdentitySpace | None = None, postprocess: str = "posterior") -> list[dict]:
    space = space or IdentitySpace.load()
    coords = space.coords(landmarks)
    scale = space.prior_std
    idx = np.arange(len(identities))
    out = []
    for eps in eps_list:
        released = privatize_coords(coords, space, eps, IntegerLaplace("seeded", seed), postprocess=postprocess)
        r = reid_rank1(released / scale, identities, idx, coords / scale, identities, similarity="neg_euclidean")
        out.append({"eps": eps, "rank1": r.value, "n": r.n})
    return out
