"""Re-identification: rank-1 (cross-image and same-image), TAR@FAR, identity intrusion.

Definitions (``../shared/docs/metrics.md``): a probe is an anonymised image of a person who has
2+ images in the evaluation set; the gallery holds embeddings of *all original* images. Rank-1
cross-image excludes the probe's own original from the gallery; same-image keeps it. The anonymised
face is embedded at the *original's* face location and alignment (the attacker knows where the face
is), so a method cannot score by making the detector miss. Similarity is cosine on L2-normalised
embeddings (higher = more alike) unless ``similarity="neg_euclidean"``.

Thresholds for TAR@FAR and intrusion are fitted on originals only: LFW ``pairs.txt`` for LFW
(see :func:`bench.verify`), otherwise every impostor pair of original gallery images.
"""
from __future__ import annotations

import numpy as np

from .base import Metric, MetricResult


def similarity_matrix(a: np.ndarray, b: np.ndarray, similarity: str = "cosine") -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if similarity == "cosine":
        an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        return an @ bn.T
    if similarity == "neg_euclidean":
        return -np.sqrt(np.maximum((a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None] - 2 * a @ b.T, 0))
    raise ValueError(f"unknown similarity '{similarity}'")


PROBE_BLOCK = 1024  # probes per similarity block: memory O(block x gallery), not O(probes x gallery)


def _blocks(n: int, size: int = PROBE_BLOCK):
    return (slice(i, min(i + size, n)) for i in range(0, n, size))


def _probe_mask(gallery_ids: np.ndarray, probe_ids: np.ndarray) -> np.ndarray:
    ids, counts = np.unique(gallery_ids, return_counts=True)
    return np.isin(probe_ids, ids[counts >= 2])


def reid_rank1(probe_emb, probe_ids, probe_gallery_index, gallery_emb, gallery_ids, same_image: bool = False,
               similarity: str = "cosine") -> MetricResult:
    """Functional rank-1 re-identification.

    Args:
        probe_emb: (P, D) embeddings of anonymised images.
        probe_ids: (P,) identity of each probe.
        probe_gallery_index: (P,) index of each probe's own original in the gallery.
        gallery_emb, gallery_ids: (G, D), (G,) originals.

    Example:
        >>> import numpy as np
        >>> g = np.eye(4); ids = np.array(["a", "a", "b", "b"])
        >>> reid_rank1(g, ids, np.arange(4), g, ids, same_image=True).value
        1.0
    """
    probe_ids, gallery_ids = np.asarray(probe_ids), np.asarray(gallery_ids)
    keep = _probe_mask(gallery_ids, probe_ids)
    if not keep.any():
        return MetricResult(float("nan"), 0)
    emb, own, ids = np.asarray(probe_emb)[keep], np.asarray(probe_gallery_index)[keep], probe_ids[keep]
    hits = []
    for b in _blocks(len(emb)):
        sim = similarity_matrix(emb[b], gallery_emb, similarity)
        if not same_image:
            sim[np.arange(len(sim)), own[b]] = -np.inf
        hits.append(gallery_ids[sim.argmax(1)] == ids[b])
    hit = np.concatenate(hits)
    return MetricResult(float(hit.mean()), int(keep.sum()))


def fit_threshold(impostor_scores: np.ndarray, far: float = 1e-3) -> float:
    """Smallest threshold whose false-accept rate on the impostor scores is <= far."""
    s = np.sort(np.asarray(impostor_scores, np.float64))[::-1]
    k = int(np.floor(far * len(s)))  # at most k impostors may be >= threshold
    return float(np.nextafter(s[k], np.inf)) if k < len(s) else float(s[-1])


def impostor_scores(gallery_emb, gallery_ids, similarity: str = "cosine", max_pairs: int = 2_000_000,
                    seed: int = 0) -> np.ndarray:
    """Scores of impostor pairs of originals (all pairs, or a seeded sample of ``max_pairs``)."""
    gallery_ids = np.asarray(gallery_ids)
    n = len(gallery_ids)
    i, j = np.triu_indices(n, 1)
    if len(i) > max_pairs:
        sel = np.random.default_rng(seed).choice(len(i), max_pairs, replace=False)
        i, j = i[sel], j[sel]
    diff = gallery_ids[i] != gallery_ids[j]
    i, j = i[diff], j[diff]
    g = np.asarray(gallery_emb, np.float64)
    if similarity == "cosine":
        g = g / np.linalg.norm(g, axis=1, keepdims=True)
    out = []
    for b in _blocks(len(i), 65536):  # gathering all pairs at once would take pairs x dim x 8 bytes
        out.append(np.einsum("ij,ij->i", g[i[b]], g[j[b]]) if similarity == "cosine"
                   else -np.linalg.norm(g[i[b]] - g[j[b]], axis=1))
    return np.concatenate(out) if out else np.zeros(0)


def tar_at_far(probe_emb, probe_ids, probe_gallery_index, gallery_emb, gallery_ids, threshold: float,
               similarity: str = "cosine") -> MetricResult:
    """Fraction of genuine (anonymised probe, *other* original of the same person) pairs accepted."""
    probe_ids, gallery_ids = np.asarray(probe_ids), np.asarray(gallery_ids)
    emb, own = np.asarray(probe_emb), np.asarray(probe_gallery_index)
    parts = []
    for b in _blocks(len(probe_ids)):
        sim = similarity_matrix(emb[b], gallery_emb, similarity)
        same = probe_ids[b][:, None] == gallery_ids[None]
        same[np.arange(len(sim)), own[b]] = False
        parts.append(sim[same])
    scores = np.concatenate(parts) if parts else np.zeros(0)
    if scores.size == 0:
        return MetricResult(float("nan"), 0)
    return MetricResult(float((scores >= threshold).mean()), int(scores.size))


def intrusion_rate(probe_emb, probe_ids, probe_gallery_index, gallery_emb, gallery_ids, threshold: float,
                   similarity: str = "cosine") -> MetricResult:
    """Fraction of anonymised images whose nearest original (own original excluded) is a different
    person *and* is accepted at the verification threshold (the output borrowed an identity)."""
    probe_ids, gallery_ids = np.asarray(probe_ids), np.asarray(gallery_ids)
    if len(probe_ids) == 0:
        return MetricResult(float("nan"), 0)
    emb, own = np.asarray(probe_emb), np.asarray(probe_gallery_index)
    intruded = []
    for b in _blocks(len(probe_ids)):
        sim = similarity_matrix(emb[b], gallery_emb, similarity)
        rows = np.arange(len(sim))
        sim[rows, own[b]] = -np.inf
        best = sim.argmax(1)
        intruded.append((gallery_ids[best] != probe_ids[b]) & (sim[rows, best] >= threshold))
    return MetricResult(float(np.concatenate(intruded).mean()), len(probe_ids))


class ReIdentification(Metric):
    """All four privacy numbers for one recognizer against a precomputed gallery of originals.

    ``update`` takes embeddings of anonymised images, already computed at the originals' face
    locations (the harness batches and caches them); ``compute`` returns a dict of results.

    Example:
        >>> import numpy as np
        >>> ids = np.array(["a", "a", "b", "b"]); g = np.eye(4) + 0.1
        >>> m = ReIdentification(g, ids, threshold=0.5)
        >>> m.update(g, ids, np.arange(4))
        >>> round(m.compute()["reid_rank1_same"].value, 2)
        1.0
    """

    def __init__(self, gallery_emb, gallery_ids, threshold: float, similarity: str = "cosine"):
        self.gallery_emb, self.gallery_ids = np.asarray(gallery_emb), np.asarray(gallery_ids)
        self.threshold, self.similarity = threshold, similarity
        super().__init__()

    def _reset(self):
        self._emb, self._ids, self._idx = [], [], []

    def update(self, probe_emb, probe_ids, probe_gallery_index):
        self._emb.append(np.asarray(probe_emb, np.float64).reshape(len(probe_ids), -1))
        self._ids += list(probe_ids)
        self._idx += list(probe_gallery_index)

    def compute(self) -> dict[str, MetricResult]:
        dim = self.gallery_emb.shape[1]
        e = np.concatenate(self._emb) if self._emb else np.zeros((0, dim))
        args = (e, np.array(self._ids), np.array(self._idx, int), self.gallery_emb, self.gallery_ids)
        out = {
            "reid_rank1": reid_rank1(*args, similarity=self.similarity),
            "reid_rank1_same": reid_rank1(*args, same_image=True, similarity=self.similarity),
            "reid_tar_far1e-3": tar_at_far(*args, self.threshold, self.similarity),
            "intrusion_rate": intrusion_rate(*args, self.threshold, self.similarity),
        }
        for r in out.values():
            r.failures.update(self.failures)
        return out
