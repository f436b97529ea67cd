"""Two cells of one run compared on the same probes: the difference of their strongest attacks,
or of a utility metric, with one identity bootstrap for both (``bench compare``).

Why paired: two cells of a run attack the same probes (the same people, the same photos). Their
separate 95 % intervals each carry the spread of *which people* were drawn, which the difference
does not have when both cells are resampled with the same people. So two intervals that overlap
can still hide a difference the data support, and the rule "do not call a difference the intervals
do not support" is best applied to the interval of the difference itself: each bootstrap replicate
draws identities once, recomputes every attack (attacker x recognizer) of both cells on them, and
takes (strongest of A) - (strongest of B). The strongest attack is re-chosen in every replicate, as
in the cells' own intervals (:func:`bench.metrics.intervals.bootstrap_max`); an attacker that failed
its sanity check is left out of both, as from the headline.

Utility metrics pair the same way (:func:`compare_utility`): each metric group says how its
statistics pair (:meth:`bench.metrics.registry.MetricGroup.paired`: means over images by default,
identity diversity and the seam's edge ratio as the ratios they are), on the images both cells
measured. FID and KID compare two sets of images and are not paired here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import methods as method_registry
from bench.aggregate.cells import load_cell
from bench.attackers.outcomes import attack
from bench.attackers.registry import available, get_attacker
from bench.metrics.intervals import N_BOOT, bootstrap_replicates, cell_seed, percentile_interval
from bench.metrics.registry import STRONGEST, all_metrics, groups as metric_groups, metric as metric_spec
from bench.metrics.reid_scores import INTRUSION_RATE, REID_RANK1, REID_RANK1_SAME
from bench.run.evaluate import Cell
from bench.run.passes import (add_kept_outcomes, aggregation_config, run_calibration, run_cells, run_recognizers,
                              run_samples)
from bench.store.results import ResultStore, eps_key
from kpdp.datasets import get_dataset

#: the per-probe re-identification rates a comparison can pair (TAR@FAR counts genuine *pairs*,
#: whose number may differ between cells)
PAIRED_METRICS = (REID_RANK1, REID_RANK1_SAME, INTRUSION_RATE)


@dataclass
class Difference:
    """``a - b`` of the strongest attack's rate, with its paired interval and each cell's own."""

    metric: str
    a: float
    b: float
    a_interval: tuple[float, float]
    b_interval: tuple[float, float]
    a_attack: str
    b_attack: str
    difference: float
    interval: tuple[float, float]
    n_probes: int
    n_people: int
    backend: str = ""  # a utility metric's backend column (a recognizer, an attribute, an angle)

    @property
    def apart(self) -> bool:
        """Whether the paired interval excludes 0: the data support a difference."""
        lo, hi = self.interval
        return lo > 0 or hi < 0


def paired_difference(hits_a: dict, hits_b: dict, groups, metric: str = REID_RANK1, n_boot: int = N_BOOT,
                      seed: int = 0) -> Difference:
    """``hits_a``/``hits_b``: {attack name: per-probe 0/1 outcomes}, all over the same probes in the
    same order, ``groups`` each probe's identity.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> people = np.repeat(np.arange(60), 3)                          # 60 people, 3 probes each
        >>> b = rng.random(180) < np.repeat(rng.random(60), 3) * 0.5      # some people easy to find
        >>> a = b | (rng.random(180) < 0.08)                              # A finds what B does, and more
        >>> d = paired_difference({"lazy": a}, {"lazy": b}, people)
        >>> d.apart, d.a_interval[0] < d.b_interval[1]                    # supported, intervals overlap
        (True, True)
    """
    groups = np.asarray(groups)
    names_a, names_b = list(hits_a), list(hits_b)
    if not names_a or not names_b:
        raise ValueError("each cell needs at least one valid attack to compare")
    rows = [np.asarray(hits_a[k], float) for k in names_a] + [np.asarray(hits_b[k], float) for k in names_b]
    if any(r.shape != groups.shape for r in rows):
        raise ValueError(f"every attack's outcomes must cover the same {len(groups)} probes")
    stacked = np.stack(rows)
    means = stacked.mean(1)
    ka = len(names_a)
    reps = bootstrap_replicates(stacked, groups, n_boot, seed)  # one draw of people for both cells
    best_a, best_b = np.nanmax(reps[:, :ka], 1), np.nanmax(reps[:, ka:], 1)
    a, b = float(means[:ka].max()), float(means[ka:].max())
    return Difference(metric, a, b, percentile_interval(best_a), percentile_interval(best_b),
                      names_a[int(means[:ka].argmax())], names_b[int(means[ka:].argmax())], a - b,
                      percentile_interval(best_a - best_b), int(len(groups)), int(len(np.unique(groups))))


def valid_hits(outcomes, metric: str, invalid) -> dict:
    """{"attacker/recognizer": per-probe outcomes} of every attack that passed its sanity check."""
    return {f"{a}/{rec}": h[metric] for (a, rec), h in outcomes.hits.items() if a not in invalid and metric in h}


def cell_outcomes(store, meta: dict, ds, method: str, eps, seed: int, image_ids):
    """Every attack of the run on one cell, per probe: the attackers whose rows the run holds,
    recomputed from the stored features, and the outcomes the attack passes kept
    (``semi-finetune``, ``recon-*``)."""

    recognizers = run_recognizers(meta)
    have = store.attackers_with(ds.name, REID_RANK1) - {"", STRONGEST}
    # attackers that need pixels (semi-finetune, recon-*) cannot be recomputed from features: their
    # passes kept the per-probe outcomes in the store
    recomputed = sorted(a for a in have if a in available() and not get_attacker(a).pixels)
    cfg = aggregation_config(recognizers, meta.get("seeds") or [0], recomputed)
    cell = load_cell(store, Cell(ds.name, method, eps, seed), cfg, None, ds, image_ids,
                     run_calibration(meta, ds.name, recognizers))
    if not cell.probes:
        raise ValueError(f"{ds.name} {method} ε {eps} seed {seed}: no probe in the store (not in this run?)")
    out = attack(cell, recomputed)
    add_kept_outcomes(store, ds.name, method, eps, seed, out, skip=set(recomputed))
    return out


def _label(method: str, eps: str) -> str:
    return f"{method} at ε {eps}" if eps else method


def compare(run_dir, method_a: str, method_b: str, eps_a=None, eps_b=None, metric: str = REID_RANK1,
            dataset: str | None = None, seed: int | None = None, n_boot: int = N_BOOT) -> Difference:
    """Paired difference of the strongest ``metric`` between two cells of the run at ``run_dir``
    (``eps`` of a method that takes none is ignored; ``dataset``/``seed``: the run's first)."""

    if metric not in PAIRED_METRICS:
        raise ValueError(f"metric '{metric}' is not a re-identification rate that pairs "
                         f"({', '.join(PAIRED_METRICS)}); a utility metric: compare_utility")
    run = _open(run_dir, method_a, method_b, eps_a, eps_b, dataset, seed)
    invalid = {a for a, v in ((run.meta.get(f"attacker_sanity:{run.ds.name}") or {}).get("verdicts") or {}).items()
               if v != "ok"}
    (oa, ob) = (cell_outcomes(run.store, run.meta, run.ds, m, e, run.seed, run.image_ids) for m, e in run.cells)
    if not np.array_equal(oa.groups, ob.groups):
        raise ValueError("the two cells do not hold the same probes: a paired comparison needs them")
    return paired_difference(valid_hits(oa, metric, invalid), valid_hits(ob, metric, invalid), oa.groups, metric,
                             n_boot, cell_seed(run.ds.name, *run.cells[0], *run.cells[1], run.seed))


def compare_utility(run_dir, method_a: str, method_b: str, eps_a=None, eps_b=None, metric: str = "all",
                    dataset: str | None = None, seed: int | None = None, n_boot: int = N_BOOT) -> list[Difference]:
    """Paired differences of a utility ``metric`` (one per backend: each recognizer's identity
    diversity, each attribute's agreement, each pose angle) between two cells of one run, on the
    images both measured; ``"all"``: every metric that the run's groups pair, in declaration order."""

    specs = list(all_metrics().values()) if metric == "all" else [metric_spec(metric)]  # unknown: the known ones
    if metric != "all" and specs[0].privacy:
        raise ValueError(f"'{metric}' is a privacy metric; the ones that pair (compare): {', '.join(PAIRED_METRICS)}")
    run = _open(run_dir, method_a, method_b, eps_a, eps_b, dataset, seed)
    recognizers = run_recognizers(run.meta)
    cfg = aggregation_config(recognizers, run.meta.get("seeds") or [0], [])
    shared = run_calibration(run.meta, run.ds.name, recognizers)
    cell_a, cell_b = (load_cell(run.store, Cell(run.ds.name, m, e, run.seed), cfg, None, run.ds, run.image_ids, shared)
                      for m, e in run.cells)
    out = []
    for name in dict.fromkeys(s.group for s in specs):
        group = metric_groups()[name]()
        for spec in (s for s in specs if s.group == name):
            # a seed per metric, so that one metric's interval is the same asked alone or with 'all' (a group
            # with several metrics pairs once per metric: seconds, against a run's hours)
            boot_seed = cell_seed(run.ds.name, *run.cells[0], *run.cells[1], run.seed, spec.name)
            paired = {k: v for k, v in group.paired(cell_a, cell_b, n_boot, boot_seed).items() if k[0] == spec.name}
            if not paired and metric != "all":
                pairable = sorted({k[0] for k in group.paired(cell_a, cell_a, 2, 0)})
                raise ValueError(f"'{metric}' is not paired on these cells (not measured in both, or a statistic of "
                                 f"two image sets such as FID); group '{group.name}' pairs: "
                                 f"{', '.join(pairable) or 'nothing'}")
            for (_, backend), p in paired.items():
                out.append(Difference(spec.name, p.a, p.b, percentile_interval(p.replicates[:, 0]),
                                      percentile_interval(p.replicates[:, 1]), "", "", p.a - p.b,
                                      percentile_interval(p.replicates[:, 0] - p.replicates[:, 1]), p.n, p.people,
                                      backend))
    return out


@dataclass
class _Run:
    store: ResultStore
    meta: dict
    ds: object
    seed: int
    cells: list  # [(method, ε), (method, ε)], canonical
    image_ids: list


def _open(run_dir, method_a, method_b, eps_a, eps_b, dataset, seed) -> _Run:
    """The run's store and the two cells, each checked to be one of the run's."""
    run_dir = Path(run_dir)
    if not (run_dir / "results.sqlite").is_file():
        raise FileNotFoundError(f"{run_dir}/results.sqlite: not a run directory (the store is needed, not only "
                                "metrics.csv)")
    store = ResultStore(run_dir)
    meta = store.meta()
    datasets = meta.get("datasets") or []
    d = next((x for x in datasets if dataset in (None, x["name"])), None)
    if d is None:
        raise ValueError(f"data set '{dataset}' is not in this run; its data sets: "
                         f"{', '.join(x['name'] for x in datasets)}")
    ds = get_dataset(d["name"], d.get("root"), d.get("split"))
    seed = (meta.get("seeds") or [0])[0] if seed is None else seed
    run_methods = {(m, eps_key(e)) for m, e in run_cells(meta)}
    cells = []
    for m, e in ((method_a, eps_a), (method_b, eps_b)):
        m = method_registry.canonical(m)
        e = float(e) if e is not None and method_registry.uses_eps(m) else None
        if (m, eps_key(e)) not in run_methods:
            raise ValueError(f"{_label(m, eps_key(e))} is not a cell of this run; its cells: "
                             + ", ".join(_label(x, y) for x, y in sorted(run_methods, key=str)))
        cells.append((m, e))
    return _Run(store, meta, ds, seed, cells, [s.image_id for s in run_samples(ds, meta)])
