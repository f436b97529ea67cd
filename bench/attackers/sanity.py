"""A broken attacker looks like perfect privacy, so every attacker is checked on every run:

* on the ``original`` row it must re-identify: rank-1 (its strongest recognizer) ≥
  :data:`MIN_ORIGINAL_RANK1` (LFW-like data; a data set whose own originals are harder can lower
  it with ``--sanity-min-rank1``, and the run records the value used);
* on ``blur`` it must not do worse than the ``ignorant`` attacker beyond its interval (knowing the
  method cannot hurt an attacker who may always ignore that knowledge).

An attacker that fails is reported with ``valid = 0`` and left out of the strongest attack
(``attacker = max``); the gate refuses its rows. A run without the ``original`` row cannot check
and says so.
"""
from __future__ import annotations

from bench.attackers.registry import IGNORANT
from bench.metrics.registry import STRONGEST
from bench.metrics.reid_scores import REID_RANK1

MIN_ORIGINAL_RANK1 = 0.9
REFERENCE_METHODS = ("original", "blur")


def strongest(rows, attacker: str):
    """The attacker's ``reid_rank1`` row over its recognizers (``backend = max``), or None."""
    for r in rows:
        if r.metric == REID_RANK1 and r.backend == STRONGEST and r.attacker == attacker:
            return r
    return None


def check(rows_by_method: dict[str, list], attackers: list[str],
          min_original_rank1: float = MIN_ORIGINAL_RANK1) -> dict[str, str]:
    """{attacker: why it is invalid} from the reid rows of the reference methods' cells
    (``rows_by_method[method]``); an attacker absent from the result passed (or could not be
    checked: see :func:`unchecked`).

    Example:
        >>> from bench.metrics.registry import Row
        >>> rows = {"original": [Row("reid_rank1", "max", 0.98, 50, 0.95, 1.0, "ignorant"),
        ...                      Row("reid_rank1", "max", 0.10, 50, 0.03, 0.2, "broken")]}
        >>> check(rows, ["ignorant", "broken"])
        {'broken': 'rank-1 0.100 on the original images (< 0.9): it cannot re-identify unprotected faces'}
    """
    invalid = {}
    orig = rows_by_method.get("original", [])
    blur = rows_by_method.get("blur", [])
    ref = strongest(blur, IGNORANT)
    for a in attackers:
        r = strongest(orig, a)
        if r is not None and not r.value >= min_original_rank1:
            invalid[a] = (f"rank-1 {r.value:.3f} on the original images (< {min_original_rank1:g}): it cannot "
                          "re-identify unprotected faces")
            continue
        b = strongest(blur, a)
        if a != IGNORANT and b is not None and ref is not None and b.ci_high < ref.value:
            invalid[a] = (f"rank-1 {b.value:.3f} [{b.ci_low:.3f}, {b.ci_high:.3f}] on blur, below the ignorant "
                          f"attacker's {ref.value:.3f}: knowing the method made it weaker")
    return invalid


def unchecked(rows_by_method: dict[str, list]) -> list[str]:
    """What could not be checked in this run (shown as a note)."""
    return [f"no '{m}' row in this run: the attackers' {what} check did not run"
            for m, what in (("original", "re-identify-the-originals"), ("blur", "not-weaker-than-ignorant"))
            if m not in rows_by_method]
