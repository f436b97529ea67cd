"""Identity diversity (``../shared/docs/metrics.md``): the mean cosine distance between embeddings
of anonymised faces of *different* people, divided by the same mean over their originals. 1: the
outputs are as varied as the real people; near 0: every output is the same face.

Every pair of images of different people is used, exactly: with unit embeddings ``u``, the sum of
``u_i · u_j`` over pairs of different identities is ``(|Σ_k s_k|² - Σ_k |s_k|²) / 2`` where ``s_k``
is the sum over identity k's images, so nothing is subsampled and the cost is linear in the images.
The interval is a bootstrap over identities of the same ratio (each draw weights identity k by how
often it was drawn; copies of one person are never paired).
"""
from __future__ import annotations

import numpy as np

from bench.metrics.intervals import N_BOOT, percentile_interval
from bench.metrics.registry import MetricGroup, MetricSpec, Paired, Row, register_group

BOOT_CHUNK = 100  # bootstrap draws per matrix product: memory O(chunk x identities x dims)


def _identity_sums(emb: np.ndarray, identities) -> tuple[np.ndarray, np.ndarray]:
    """Per-identity sums of unit embeddings (K, D) and image counts (K,)."""
    e = np.asarray(emb, np.float64)
    u = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    _, inv = np.unique(np.asarray(identities), return_inverse=True)
    k = inv.max() + 1
    sums = np.zeros((k, u.shape[1]))
    np.add.at(sums, inv, u)
    return sums, np.bincount(inv, minlength=k).astype(np.float64)


def _distance_sums(sums: np.ndarray, counts: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum of cosine distances, number of pairs) over pairs of different identities, for each row
    of identity ``weights`` (B, K) (1 = every identity once)."""
    ws = weights @ sums  # (B, D)
    dots = ((ws ** 2).sum(1) - ((weights ** 2) * (sums ** 2).sum(1)).sum(1)) / 2
    pairs = ((weights @ counts) ** 2 - (weights ** 2) @ (counts ** 2)) / 2
    return pairs - dots, pairs


def identity_diversity(anonymised, originals, identities) -> float:
    """Mean cosine distance of anonymised faces of different people over the same on the originals
    (row i of both arrays is the same image).

    Example:
        >>> orig = np.eye(4); ids = ["a", "b", "c", "d"]
        >>> identity_diversity(orig, orig, ids)
        1.0
        >>> identity_diversity(np.ones((4, 4)), orig, ids)
        0.0
        >>> anon = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]])
        >>> round(identity_diversity(anon, orig, ids), 4)  # 4 of the 6 pairs stay orthogonal
        0.6667
    """
    a, n = _identity_sums(anonymised, identities)
    o, _ = _identity_sums(originals, identities)
    ones = np.ones((1, len(n)))
    da, pairs = _distance_sums(a, n, ones)
    do, _ = _distance_sums(o, n, ones)
    if pairs[0] <= 0:
        return float("nan")
    return float(da[0] / do[0]) if do[0] > 0 else float("nan")


def diversity_interval(anonymised, originals, identities, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of :func:`identity_diversity` under resampling of identities."""
    return percentile_interval(diversity_replicates(anonymised, originals, identities, n_boot, seed))


def diversity_replicates(anonymised, originals, identities, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """(n_boot,) bootstrap replicates of :func:`identity_diversity` (NaN where undefined); the same
    ``identities`` and ``seed`` draw the same people, so two methods' replicates pair."""
    a, n = _identity_sums(anonymised, identities)
    o, _ = _identity_sums(originals, identities)
    k = len(n)
    if k < 2:
        return np.full(n_boot, np.nan)
    rng = np.random.default_rng(seed)
    reps = []
    for start in range(0, n_boot, BOOT_CHUNK):
        w = rng.multinomial(k, np.full(k, 1.0 / k), size=min(BOOT_CHUNK, n_boot - start)).astype(np.float64)
        da, pairs = _distance_sums(a, n, w)
        do, _ = _distance_sums(o, n, w)
        with np.errstate(invalid="ignore", divide="ignore"):
            reps.append(np.where((pairs > 0) & (do > 0), da / do, np.nan))
    return np.concatenate(reps)


@register_group
class DiversityGroup(MetricGroup):
    """Reads the reid group's embeddings (``emb:<recognizer>`` of every original and every
    anonymised image): it measures nothing itself and gives no rows when reid did not run."""

    name = "diversity"
    version = "1"
    needs = ("recognizers",)
    cached = False  # nothing to measure per image
    metrics = (MetricSpec("identity_diversity", "diversity", "recognizer", True, "identity diversity", 0.02,
                          definition="mean cosine distance between anonymised faces of different "
                                     "people, over the same on their originals (1: as varied as real "
                                     "people; near 0: every output is one face)",
                          unit="ratio"),)

    def paired(self, cell_a, cell_b, n_boot: int, seed: int) -> dict[tuple[str, str], Paired]:
        """Per recognizer, both cells' diversity on the images both measured, the same people drawn
        for both in every replicate."""
        out = {}
        for rec in cell_a.recognizers:
            key = f"emb:{rec}"
            a, b = (_embeddings(c, key) for c in (cell_a, cell_b))
            common = [i for i in a if i in b]
            if key not in cell_a.gallery_feats or len(common) < 2:
                continue
            where = {r[0]: k for k, r in enumerate(cell_a.probes)}
            pos = [where[i] for i in common]
            orig = cell_a.gallery_feats[key][cell_a.probe_index[pos]]
            ids = cell_a.probe_identities[pos]
            anon_a, anon_b = np.stack([a[i] for i in common]), np.stack([b[i] for i in common])
            value_a, value_b = identity_diversity(anon_a, orig, ids), identity_diversity(anon_b, orig, ids)
            if not (np.isfinite(value_a) and np.isfinite(value_b)):  # one person only: undefined, as in aggregate
                continue
            out[("identity_diversity", rec)] = Paired(
                value_a, value_b, np.stack([diversity_replicates(anon_a, orig, ids, n_boot, seed),
                                            diversity_replicates(anon_b, orig, ids, n_boot, seed)], 1),
                len(common), len(set(ids)))
        return out

    def aggregate(self, cell) -> list[Row]:
        if not cell.probes:
            return []
        ids = cell.probe_identities
        rows = []
        for rec in cell.recognizers:
            key = f"emb:{rec}"
            if key not in cell.gallery_feats or any(key not in p[2] for p in cell.probes):
                continue
            anon = cell.probe_features(key)
            orig = cell.gallery_feats[key][cell.probe_index]
            v = identity_diversity(anon, orig, ids)
            if np.isfinite(v):
                rows.append(Row("identity_diversity", rec, v, len(anon),
                                *diversity_interval(anon, orig, ids, seed=cell.boot_seed)))
        return rows


def _embeddings(cell, key: str) -> dict:
    """{image id: embedding} of the cell's probes that have ``key``."""
    return {r[0]: np.asarray(r[2][key], np.float64) for r in cell.probes if key in r[2]}
