"""What the attack passes after the grid share (``semi-finetune``: :mod:`bench.run.finetune`;
``recon-*``: :mod:`bench.run.recon`): the run's own calibration, the cells a pass attacks, the
sanity check, and the per-probe outcomes each pass keeps so that the next pass's strongest attack
counts them."""
from __future__ import annotations

from types import SimpleNamespace

from bench.attackers import sanity
from bench.metrics.reid_scores import REID_RANK1


def run_cells(meta: dict) -> list[tuple]:
    """(method spec, ε) of every cell a run's metadata holds."""
    return [(v.get("spec", k.split("@")[0]), v.get("eps")) for k, v in (meta.get("methods") or {}).items()]


def run_recognizers(meta: dict) -> list[str]:
    """The recognizers a run used."""
    return [k.split(":", 1)[1] for k in (meta.get("backends") or {}) if k.startswith("recognizer:")]


def run_samples(ds, meta: dict) -> list:
    """The samples of ``ds`` that the run measured (its ``--limit`` applied)."""
    return list(ds.samples)[: meta["limit"]] if meta.get("limit") else list(ds.samples)


def aggregation_config(recognizers, seeds, attackers) -> SimpleNamespace:
    """The slice of a run's configuration that re-aggregating a stored cell reads
    (:func:`bench.aggregate.cells.load_cell`, :func:`bench.attackers.outcomes.attack`): the run's
    recognizers and seeds and the attackers to recompute, on the CPU in this process."""
    return SimpleNamespace(recognizers=list(recognizers), detectors=[], device="cpu", workers=1, seeds=list(seeds),
                           attackers=list(attackers))


def run_calibration(meta: dict, dataset: str, recognizers) -> dict:
    """The run's fitted TAR@FAR thresholds per recognizer, as the aggregation's ``shared`` dict
    holds them (else LFW's 6,000 pair images would be embedded again)."""
    shared: dict = {}
    for rec in recognizers:
        thr = meta.get(f"threshold:{dataset}:{rec}")
        if thr is not None:
            shared[("threshold", rec)] = thr["value"]
    return shared


def cells_to_attack(run_methods, run_seeds, seeds, selected) -> list[tuple]:
    """(method, ε, seed) to attack: the sanity check's reference cells (first run seed) always, then
    every cell of ``seeds`` that ``selected(method, ε)`` keeps."""
    todo = [(m, e, s) for m, e in run_methods if m in sanity.REFERENCE_METHODS for s in run_seeds[:1]]
    todo += [(m, e, s) for m, e in run_methods for s in seeds if selected(m, e) and (m, e, s) not in todo]
    return todo


def check_sanity(store, meta: dict, dataset: str, by_method: dict, attackers: list[str], log=print) -> dict:
    """Sanity-check ``attackers`` on the reference cells' rows (``by_method``), as ``bench run``
    does for the others; say what failed or could not be checked, and record the verdicts in the
    run's metadata beside the earlier ones. Returns {attacker: why it is invalid}."""
    old = meta.get(f"attacker_sanity:{dataset}") or {}
    min_rank1 = old.get("min_original_rank1", sanity.MIN_ORIGINAL_RANK1)
    invalid = sanity.check(by_method, attackers, min_rank1)
    for a, why in invalid.items():
        log(f"warning: attacker '{a}' failed its sanity check on {dataset}: {why}; its rows are marked invalid "
            "and left out of the strongest attack")
    notes = sanity.unchecked(by_method)
    for n in notes:
        log(f"note: {n}")
    store.set_meta(**{f"attacker_sanity:{dataset}": {
        **old, "min_original_rank1": min_rank1, "notes": old.get("notes", notes),
        "verdicts": {**(old.get("verdicts") or {}), **{a: invalid.get(a, "ok") for a in attackers}}}})
    return invalid


def keep_outcomes(store, dataset: str, method: str, eps, seed: int, outcomes, attackers) -> None:
    """Store the per-probe outcomes of this pass's ``attackers`` on one cell
    (:meth:`bench.store.results.ResultStore.put_attack_outcomes`)."""
    for a in attackers:
        by_rec = {rec: hits for (att, rec), hits in outcomes.hits.items() if att == a}
        if by_rec:
            store.put_attack_outcomes(dataset, method, eps, seed, a, by_rec)


def add_kept_outcomes(store, dataset: str, method: str, eps, seed: int, outcomes, skip) -> dict[str, list[str]]:
    """Add to ``outcomes`` the per-probe outcomes that other passes kept for this cell (attackers
    not in ``skip``) when they are of the same probes (the same count: the cell's probes are its
    images in id order, so a run extended since has other probes and its outcomes are left out);
    returns {attacker: its recognizers} of those added."""
    n_probes = 0 if outcomes.groups is None else len(outcomes.groups)
    added = {}
    for a, by_rec in store.attack_outcomes(dataset, method, eps, seed).items():
        if a in skip:
            continue
        # a metric whose count differs (e.g. TAR without a threshold) is left out by attack_rows
        if all(len(h[REID_RANK1]) == n_probes for h in by_rec.values()):
            for rec, hits in by_rec.items():
                outcomes.hits[(a, rec)] = hits
            added[a] = sorted(by_rec)
    return added
