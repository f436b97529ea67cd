"""Audit of the ``semi-linear`` attacker's map choice: the evaluation rank-1 of every linear map it
chooses from (none = ``lazy``, WCCN, LDA), forced one at a time, against the one it chose.

``semi-linear`` picks its map by rank-1 on two identity folds of its 400 training images (89
people), so the choice never sees an evaluation image. On LFW devtest's gallery of 3,708 photos
that choice can be the weaker map: a held-out difference of 0.01 decides between a rank-1 of 0.16
and 0.24. This script measures, per stored cell, what each map would have reached (the attackers ``lazy``,
``semi-wccn`` and ``semi-lda`` apply them), with the same identity-bootstrap intervals as
``metrics.csv``, and the best map's rank-1 as an attack the headline should not be below: an audit
of a store aggregated before ``semi-wccn`` and ``semi-lda`` existed, without aggregating it again.

    python scripts/semi_linear_maps.py --run runs/lfw-full-dppix --cells dppix@0.5,dppix@64,dppix@inf

Needs the run's store (``results.sqlite``), not only its ``metrics.csv``; reads it, writes nothing
to it. Prints one line per (cell, recognizer, map) and, per cell, the largest rank-1 over maps and
recognizers with its interval (the bootstrap of a maximum, as the headline's).
"""
from __future__ import annotations

import argparse
import sys
from types import SimpleNamespace

import numpy as np

RECOGNIZERS = ("dlib", "facenet-casia")
#: each map as the attacker that applies it: none is ``lazy`` (semi-linear's ``none`` ranks alike)
MAP_ATTACKERS = {"none": "lazy", "wccn": "semi-wccn", "lda": "semi-lda"}


def cell_maps(store, ds, method: str, eps, image_ids, shared: dict) -> dict:
    """{(recognizer, map): per-probe rank-1 hits} of each map, ``(recognizer, "chosen")``:
    ``semi-linear``'s, plus ``("groups", None)``: the probes' identities (the bootstrap's clusters)
    and ``("chosen", rec)``: the map ``semi-linear`` chose."""
    from bench.aggregate.cells import load_cell
    from bench.attackers import outcomes
    from bench.run.evaluate import Cell

    attackers = ["semi-linear", *MAP_ATTACKERS.values()]
    cfg = SimpleNamespace(recognizers=list(RECOGNIZERS), detectors=[], device="cpu", workers=1, seeds=[0],
                          attackers=attackers)
    cell = load_cell(store, Cell(ds.name, method, eps, 0), cfg, None, ds, image_ids, shared)
    res = outcomes.attack(cell, attackers)
    out: dict = {("groups", None): res.groups}
    for rec in RECOGNIZERS:
        out[(rec, "chosen")] = np.asarray(res.hits[("semi-linear", rec)]["reid_rank1"], float)
        out[("chosen", rec)] = res.info.get(("semi-linear", rec), {}).get("map", "?")
        for kind, name in MAP_ATTACKERS.items():
            out[(rec, kind)] = np.asarray(res.hits[(name, rec)]["reid_rank1"], float)
    return out


def main(argv=None) -> int:
    from bench.metrics.intervals import bootstrap_max, bootstrap_mean, cell_seed
    from bench.store.results import ResultStore
    from kpdp.datasets.adapters import get_dataset

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="a run directory with its results.sqlite")
    ap.add_argument("--cells", required=True, help="method@eps,... (eps as stored: 0.5, 64.0, inf; none: method@)")
    a = ap.parse_args(argv)
    store = ResultStore(a.run)
    meta = store.meta()
    d = meta["datasets"][0]
    ds = get_dataset(d["name"], d.get("root"), d.get("split"))
    samples = list(ds.samples)[: meta["limit"]] if meta.get("limit") else list(ds.samples)
    image_ids = [s.image_id for s in samples]
    shared: dict = {}
    print("cell | recognizer | map | rank-1 [95 % identity bootstrap] | chosen by semi-linear")
    for text in a.cells.split(","):
        method, _, e = text.partition("@")
        eps = float(e) if e else None
        hits = cell_maps(store, ds, method, eps, image_ids, shared)
        groups = hits[("groups", None)]
        seed = cell_seed(ds.name, method, e, "maps")
        rows = []
        for rec in RECOGNIZERS:
            for kind in ("none", "wccn", "lda"):
                v = hits[(rec, kind)]
                lo, hi = bootstrap_mean(v, groups, seed=seed)
                mark = "<- chosen" if hits[("chosen", rec)] == kind else ""
                print(f"{text} | {rec} | {kind} | {v.mean():.3f} [{lo:.3f}, {hi:.3f}] | {mark}")
                rows.append(v)
        chosen = np.vstack([hits[(rec, "chosen")] for rec in RECOGNIZERS])
        allmaps = np.vstack(rows)
        c_lo, c_hi = bootstrap_max(chosen, groups, seed=seed)
        m_lo, m_hi = bootstrap_max(allmaps, groups, seed=seed)
        print(f"{text} | max | semi-linear as chosen | {chosen.mean(1).max():.3f} [{c_lo:.3f}, {c_hi:.3f}] |")
        print(f"{text} | max | best map | {allmaps.mean(1).max():.3f} [{m_lo:.3f}, {m_hi:.3f}] |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
