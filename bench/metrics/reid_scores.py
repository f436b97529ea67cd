"""Re-identification: rank-1 (cross-image and same-image), TAR@FAR, identity intrusion.

Definitions (``../shared/docs/metrics.md``): a probe is an anonymised image of a person who has
2+ images in the evaluation set; the gallery holds embeddings of *all original* images. Rank-1
cross-image excludes the probe's own original from the gallery; same-image keeps it. The anonymised
face is embedded at the *original's* face location and alignment (the attacker knows where the face
is), so a method cannot score by making the detector miss. Similarity is cosine on L2-normalised
embeddings (higher = more alike) unless ``similarity="neg_euclidean"``.

The TAR@FAR threshold is fitted on originals only: LFW ``pairs.txt`` for LFW (embedded with the
same face-location pipeline as probes and gallery), otherwise every impostor pair of the
evaluated originals. Intrusion uses τ (:func:`intrusion_threshold`). Every metric here uses the
same probes: the anonymised images of people with 2+ images in the gallery.
"""
from __future__ import annotations

import numpy as np

from bench.metrics.base import MetricResult

# The re-identification metrics' names: declared here once; the reid group's specs, the attackers'
# outcomes and the reports read them.
REID_RANK1 = "reid_rank1"
REID_RANK1_SAME = "reid_rank1_same"
REID_TAR_FAR = "reid_tar_far1e-3"
INTRUSION_RATE = "intrusion_rate"
REID_METRICS = (REID_RANK1, REID_RANK1_SAME, REID_TAR_FAR, INTRUSION_RATE)


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


def _probes(probe_emb, probe_ids, probe_gallery_index, gallery_ids):
    """(embeddings, own-original index, identities) of the probes of :func:`probe_mask`, and the
    gallery identities as an array."""
    probe_ids, gallery_ids = np.asarray(probe_ids), np.asarray(gallery_ids)
    keep = _probe_mask(gallery_ids, probe_ids)
    return np.asarray(probe_emb)[keep], np.asarray(probe_gallery_index)[keep], probe_ids[keep], gallery_ids


def probe_mask(gallery_ids, probe_ids) -> np.ndarray:
    """Probes are the images of people with 2+ images in the gallery (every metric of this module
    uses the same probes)."""
    return _probe_mask(np.asarray(gallery_ids), np.asarray(probe_ids))


def rank1_hits(probe_emb, probe_ids, probe_gallery_index, gallery_emb, gallery_ids, same_image: bool = False,
               similarity: str = "cosine") -> np.ndarray:
    """Per-probe rank-1 outcome (bool) for the probes of :func:`probe_mask`, in their order."""
    emb, own, ids, gallery_ids = _probes(probe_emb, probe_ids, probe_gallery_index, gallery_ids)
    hits = []
    for b in _blocks(len(emb)):
        sim = similarity_matrix(emb[b], gallery_emb, similarity)
        if not same_image:
            sim[np.arange(len(sim)), own[b]] = -np.inf  # cross-image: the probe's own original is not there
        hits.append(gallery_ids[sim.argmax(1)] == ids[b])
    return np.concatenate(hits) if hits else np.zeros(0, bool)


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
    hit = rank1_hits(probe_emb, probe_ids, probe_gallery_index, gallery_emb, gallery_ids, same_image, similarity)
    return MetricResult(float(hit.mean()) if hit.size else float("nan"), int(hit.size))


def fit_threshold(impostor_scores: np.ndarray, far: float = 1e-3) -> float:
    """Smallest threshold whose false-accept rate on the impostor scores is <= far (a score is
    accepted when ``score >= threshold``).

    Example:
        >>> scores = np.arange(1000.0)
        >>> int((scores >= fit_threshold(scores, far=1e-3)).sum())  # exactly 1e-3 of 1,000 impostors
        1
    """
    s = np.sort(np.asarray(impostor_scores, np.float64))[::-1]
    if not len(s):  # one person only (a tiny --limit): no false accept to bound, so no threshold
        return float("nan")
    k = int(np.floor(far * len(s)))  # at most k impostors may be >= threshold
    return float(np.nextafter(s[k], np.inf)) if k < len(s) else float(s[-1])


def impostor_scores(gallery_emb, gallery_ids, similarity: str = "cosine", max_pairs: int = 2_000_000,
                    seed: int = 0, block_entries: int = 1 << 24) -> np.ndarray:
    """Scores of impostor pairs of originals (all pairs, or a seeded sample of ``max_pairs``).

    Cosine scores are read off blocks of the Gram matrix (``block_entries`` floats at a time): one
    matrix product per block instead of gathering both embeddings of every pair, which for 2M
    pairs of 512-d embeddings moved 16 GB and took 43 % of the samples of a py-spy profile of a
    full-devtest run's aggregation (13.1 s a call, now 2.2 s).
    """
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
        out = np.empty(len(i))
        order = np.argsort(i, kind="stable")
        starts = np.searchsorted(i[order], np.arange(0, n + 1))
        for b in _blocks(n, max(1, block_entries // max(n, 1))):
            pos = order[starts[b.start]:starts[b.stop]]
            out[pos] = (g[b] @ g.T)[i[pos] - b.start, j[pos]]
        return out
    out = []
    for b in _blocks(len(i), 65536):  # gathering all pairs at once would take pairs x dim x 8 bytes
        out.append(-np.linalg.norm(g[i[b]] - g[j[b]], axis=1))
    return np.concatenate(out) if out else np.zeros(0)


def genuine_pairs(probe_emb, probe_ids, probe_gallery_index, gallery_emb, gallery_ids,
                  similarity: str = "cosine") -> tuple[np.ndarray, np.ndarray]:
    """Scores of every genuine (anonymised probe, *other* original of the same person) pair, and
    the index of the probe each pair belongs to (in :func:`probe_mask` order)."""
    emb, own, ids, gallery_ids = _probes(probe_emb, probe_ids, probe_gallery_index, gallery_ids)
    scores, owner = [], []
    for b in _blocks(len(ids)):
        sim = similarity_matrix(emb[b], gallery_emb, similarity)
        same = ids[b][:, None] == gallery_ids[None]
        same[np.arange(len(sim)), own[b]] = False
        r, _ = np.nonzero(same)
        scores.append(sim[same])
        owner.append(r + b.start)
    if not scores:
        return np.zeros(0), np.zeros(0, int)
    return np.concatenate(scores), np.concatenate(owner)


def tar_at_far(probe_emb, probe_ids, probe_gallery_index, gallery_emb, gallery_ids, threshold: float,
               similarity: str = "cosine") -> MetricResult:
    """Fraction of genuine (anonymised probe, *other* original of the same person) pairs accepted."""
    scores, _ = genuine_pairs(probe_emb, probe_ids, probe_gallery_index, gallery_emb, gallery_ids, similarity)
    if scores.size == 0:
        return MetricResult(float("nan"), 0)
    if np.isnan(threshold):
        return MetricResult(float("nan"), 0)
    return MetricResult(float((scores >= threshold).mean()), int(scores.size))


INTRUSION_QUANTILE = 0.99


def intrusion_threshold(gallery_emb, gallery_ids, quantile: float = INTRUSION_QUANTILE,
                        similarity: str = "cosine") -> float:
    """τ: the ``quantile`` over the originals of each original's largest similarity to *another
    person's* original in the same gallery. Real faces exceed it about 1 % of the time, whatever
    the gallery size (a pairwise-FAR threshold grows more permissive as the gallery grows)."""
    gallery_ids = np.asarray(gallery_ids)
    best = []
    for b in _blocks(len(gallery_ids)):
        sim = similarity_matrix(np.asarray(gallery_emb)[b], gallery_emb, similarity)
        sim[gallery_ids[b][:, None] == gallery_ids[None]] = -np.inf
        best.append(sim.max(1))
    best = np.concatenate(best) if best else np.zeros(0)
    best = best[np.isfinite(best)]
    return float(np.quantile(best, quantile)) if best.size else float("inf")


def intrusion_hits(probe_emb, probe_ids, probe_gallery_index, gallery_emb, gallery_ids, tau: float,
                   similarity: str = "cosine") -> np.ndarray:
    """Per-probe (of :func:`probe_mask`) intrusion outcome: the nearest original, own original
    excluded, is a different person *and* more similar than ``tau``."""
    emb, own, ids, gallery_ids = _probes(probe_emb, probe_ids, probe_gallery_index, gallery_ids)
    intruded = []
    for b in _blocks(len(ids)):
        sim = similarity_matrix(emb[b], gallery_emb, similarity)
        rows = np.arange(len(sim))
        sim[rows, own[b]] = -np.inf
        best = sim.argmax(1)
        intruded.append((gallery_ids[best] != ids[b]) & (sim[rows, best] > tau))
    return np.concatenate(intruded) if intruded else np.zeros(0, bool)


def intrusion_rate(probe_emb, probe_ids, probe_gallery_index, gallery_emb, gallery_ids, tau: float,
                   similarity: str = "cosine") -> MetricResult:
    """Fraction of probes whose nearest original (own original excluded) is a different person
    more similar than ``tau`` (:func:`intrusion_threshold`): the output borrowed an identity."""
    hit = intrusion_hits(probe_emb, probe_ids, probe_gallery_index, gallery_emb, gallery_ids, tau, similarity)
    return MetricResult(float(hit.mean()) if hit.size else float("nan"), int(hit.size))

