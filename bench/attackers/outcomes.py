"""Every attacker of a run against one cell: per (attacker, recognizer), the per-probe outcomes of
each re-identification metric, on the same probes for all, so that the strongest attack and its
interval come from one identity bootstrap (:func:`bench.metrics.intervals.bootstrap_max`).

Thresholds are the attacker's own: the ``ignorant`` attacker uses the recognizer's verification
threshold fitted on originals (LFW ``pairs.txt``) and τ of the originals; an attacker whose gallery
or space differs fits both the same way on its own (mapped) gallery: FAR 1e-3 over its impostor
pairs, τ over its closest strangers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bench.attackers.data import FOLDS_SOURCE
from bench.attackers.registry import TrainingSet, get_attacker
from bench.attackers.semi_linear import identity_folds
from bench.metrics.reid_scores import (
    INTRUSION_RATE,
    REID_METRICS,
    REID_RANK1,
    REID_RANK1_SAME,
    REID_TAR_FAR,
    fit_threshold,
    genuine_pairs,
    impostor_scores,
    intrusion_hits,
    intrusion_threshold,
    probe_mask,
    rank1_hits,
)

METRICS = REID_METRICS


@dataclass
class Outcomes:
    """``hits[(attacker, recognizer)][metric]``: per-probe (per genuine pair for TAR) outcomes."""

    hits: dict = field(default_factory=dict)
    groups: np.ndarray | None = None  # identity of each probe (bootstrap clusters)
    pair_groups: np.ndarray | None = None  # identity of each genuine pair's probe
    info: dict = field(default_factory=dict)  # (attacker, recognizer) -> what fitting chose


def _hits(P, ids, index, G, G_ids, present, threshold, tau) -> dict:
    args = (P, ids, index, G, G_ids)
    scores, owner = genuine_pairs(*args)
    # a gallery image the method failed on cannot be matched: its pairs are misses
    genuine_present = _pair_targets(P, ids, index, G_ids, present)
    if np.isnan(threshold):  # no impostor pair to fit it on: no TAR rather than a TAR of 0
        scores, owner, genuine_present = scores[:0], owner[:0], genuine_present[:0]
    return {REID_RANK1: rank1_hits(*args), REID_RANK1_SAME: rank1_hits(*args, same_image=True),
            REID_TAR_FAR: (scores >= threshold) & genuine_present, "_owner": owner,
            INTRUSION_RATE: intrusion_hits(*args, tau)}


def _pair_targets(P, ids, index, G_ids, present) -> np.ndarray:
    """Whether the gallery image of each genuine pair (in :func:`genuine_pairs` order) is present."""
    keep = probe_mask(G_ids, ids)
    out = []
    for i, own in zip(np.asarray(ids)[keep], np.asarray(index)[keep]):
        same = np.flatnonzero(G_ids == i)
        out.append(present[same[same != own]])
    return np.concatenate(out) if out else np.zeros(0, bool)


def attack(cell, attackers: list[str], seed: int = 0) -> Outcomes:
    """Run ``attackers`` against ``cell`` (a :class:`bench.aggregate.cells.CellData`) with every recognizer."""
    G_ids = cell.gallery_identities
    ids, index = cell.probe_identities, cell.probe_index
    keep = probe_mask(G_ids, ids)
    out = Outcomes(groups=ids[keep])
    position = np.cumsum(keep) - 1  # probe -> its place among the kept probes
    for rec in cell.recognizers:
        key = f"emb:{rec}"
        G0, P = cell.gallery_feats[key], cell.probe_features(key)
        for name in attackers:
            cls = get_attacker(name)
            if cls.gallery == "original":
                G, present = G0, np.ones(len(G_ids), bool)
            else:
                G, present = cell.anonymised_gallery(key)
            train = cell.training_set(key) if cls.trains else None
            if cls.trains and train is None:  # identity-disjoint folds of the evaluation images
                folds = identity_folds(G_ids, 2, seed)
                parts, info = [], []
                for f in (0, 1):
                    rows = (folds != f) & present
                    a = cls(seed).fit(TrainingSet(G[rows], G_ids[rows], FOLDS_SOURCE))
                    sel = folds[index] == f
                    parts.append((sel, _attack_once(a, P[sel], ids[sel], index[sel], G, G_ids, present,
                                                    None)))
                    info.append(a.info)
                hits = _merge(parts, keep, position)
                out.info[(name, rec)] = {"source": FOLDS_SOURCE, "folds": info}
            else:
                a = cls(seed)
                if train is not None:
                    a.fit(train)
                fixed = None
                if cls.gallery == "original" and not cls.trains:  # the recognizer's own calibration
                    fixed = (cell.verification_threshold(rec),
                             cell.memo("intrusion_tau", rec, lambda: intrusion_threshold(G0, G_ids)))
                hits = _attack_once(a, P, ids, index, G, G_ids, present, fixed)
                hits[REID_TAR_FAR] = hits[REID_TAR_FAR][np.argsort(hits.pop("_owner"), kind="stable")]
                out.info[(name, rec)] = {"source": train.source if train is not None else "", **a.info}
            out.hits[(name, rec)] = hits
            if out.pair_groups is None:
                _, owner = genuine_pairs(P, ids, index, G0, G_ids)
                out.pair_groups = out.groups[np.sort(owner, kind="stable")]
    return out


def _attack_once(a, P, ids, index, G, G_ids, present, fixed) -> dict:
    Pp, Gp = a.project(P), np.array(a.project(G), np.float64)
    Gp[~present] = 0.0  # a zero row matches nothing, also after a map with an offset
    if fixed is None:
        threshold = fit_threshold(impostor_scores(Gp[present], G_ids[present]))
        tau = intrusion_threshold(Gp[present], G_ids[present])
    else:
        threshold, tau = fixed
    return _hits(Pp, ids, index, Gp, G_ids, present, threshold, tau)


def _merge(parts, keep, position) -> dict:
    """Per-fold outcomes back in the order of the kept probes (pairs ordered by their probe)."""
    n = int(keep.sum())
    merged = {m: np.zeros(n, bool) for m in (REID_RANK1, REID_RANK1_SAME, INTRUSION_RATE)}
    tar, owners = [], []
    for sel, h in parts:
        where = position[sel & keep]
        for m in merged:
            merged[m][where] = h[m]
        tar.append(h[REID_TAR_FAR])
        owners.append(where[h["_owner"]])
    tar, owners = np.concatenate(tar), np.concatenate(owners)
    merged[REID_TAR_FAR] = tar[np.argsort(owners, kind="stable")]
    return merged
