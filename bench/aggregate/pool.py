"""A run's cells aggregated on the executor's processes instead of one after another in the driver.

Why: with the grid on every core, the aggregation that follows it was a run's longest serial
stretch, one core busy and the others idle (11-14 % of a cold LFW devtest run on 2 cores).

What each worker gets: the run's configuration, the data set, this run's image ids and a copy of the
driver's memo (``shared``), which by then holds what every cell reads alike: the gallery, the
verification thresholds, τ and the reference cells' attack outcomes (the attackers' sanity check
computed them, :func:`bench.run.evaluate.check_attackers`). What only a worker's own cells need (the
method's second releases, its attackers' training set) it computes into its own copy. A worker
computes rows and writes nothing; the driver writes each cell's rows as they come back, in the
cells' order, so an interrupt keeps every cell already written and a resumed run recomputes the rest.

Caveat: each worker runs one BLAS and torch thread, where the driver runs as many as there are
cores, so a value can differ from the serial path's in its last bits (sums reduced in another order;
1e-13 seen), never more. The rows are otherwise the same: every bootstrap is seeded by its cell.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from bench.aggregate.cells import aggregate_cell, cell_rows, write_cell_rows
from bench.metrics.registry import Row
from bench.processes import map_on_processes
from bench.store.results import ResultStore


@dataclass
class AggregationBackends:
    """What a metric group's ``aggregate`` reads of :class:`bench.measure.analysis.Backends`: the groups and
    the models' names. No model is loaded: aggregation reads stored features only."""

    groups: list
    landmarker: str

    @classmethod
    def of(cls, backends) -> "AggregationBackends":
        return cls(list(backends.groups), backends.landmarker)


def pool_workers(cfg, n_cells: int) -> int:
    """Processes to aggregate ``n_cells`` on: the process executor's workers, at most one per cell;
    1 (the driver alone) for the local executor and for Ray, whose workers may be other machines."""
    if getattr(cfg, "executor", "local") != "processes":
        return 1
    return max(1, min(int(getattr(cfg, "workers", 1)), n_cells))


_WORKER: dict = {}  # this process's store connection, run and memo


def _init(run_dir: str, cfg, ds, image_ids, shared: dict, backends: AggregationBackends) -> None:
    _WORKER.update(store=ResultStore(run_dir, check=False), cfg=cfg, ds=ds,
                   image_ids=image_ids, shared=shared, backends=backends)


def _aggregate(c) -> tuple[list[Row], object]:
    w = _WORKER
    rows = cell_rows(w["store"], c, w["cfg"], w["backends"], w["ds"], w["shared"], w["image_ids"])
    # the attack outcomes' fit records go into the run's metadata, which the driver writes
    return rows, w["shared"].get(("attack", (c.method, c.eps, c.seed)))


def aggregate_cells(store, cells: list, cfg, backends, ds, shared: dict, image_ids,
                    log=None) -> Iterator[list[Row]]:
    """Each cell's rows, in the order of ``cells``, each written to the store before it is yielded
    (:func:`bench.aggregate.cells.aggregate_cell`, on :func:`pool_workers` processes). ``shared`` must
    already hold what every cell reads alike; the cells' attack outcomes are added to it."""
    workers = pool_workers(cfg, len(cells))
    if workers <= 1:
        for c in cells:
            yield aggregate_cell(store, c, cfg, backends, ds, shared, image_ids, log)
        return
    args = (str(store.dir), cfg, ds, list(image_ids) if image_ids is not None else None, dict(shared),
            AggregationBackends.of(backends))
    for c, (rows, outcome) in zip(cells, map_on_processes(_aggregate, cells, workers, _init, args)):
        write_cell_rows(store, c, cfg, backends, rows, log)
        if outcome is not None:
            shared[("attack", (c.method, c.eps, c.seed))] = outcome
        yield rows
