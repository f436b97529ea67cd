"""What the attack passes after the grid share (``semi-finetune``: :mod:`bench.run.finetune`;
``recon-*``: :mod:`bench.run.recon`): the run's own calibration, and the cells a pass attacks."""
from __future__ import annotations

from bench.attackers import sanity


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
