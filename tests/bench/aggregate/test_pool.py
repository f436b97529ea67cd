"""Cells aggregated on the process executor's workers: the same rows and attacker fit records as
the driver's serial aggregation, written by the driver."""
import shutil
import sqlite3
from types import SimpleNamespace

import pytest
import torch
from threadpoolctl import threadpool_limits

from bench import RunConfig, evaluate
from bench.aggregate.pool import pool_workers
from tests.bench.run.test_harness import _aggregates

GRID = dict(methods=["blur", "dppix"], eps=[1.0], limit=10, quiet=True, recognizers=["dlib"], detectors=["mtcnn"],
            metrics=["reid", "detection", "landmarks", "background"], attackers=["ignorant", "lazy", "semi-linear"],
            attacker_train_images=10)


def _meta(run, key):
    return dict(sqlite3.connect(run / "results.sqlite").execute("SELECT key, value FROM run"))[key]


def test_pool_workers_only_for_the_process_executor():
    assert pool_workers(SimpleNamespace(executor="processes", workers=2), 5) == 2
    assert pool_workers(SimpleNamespace(executor="processes", workers=4), 3) == 3  # at most one per cell
    assert pool_workers(SimpleNamespace(executor="processes", workers=2), 0) == 1
    assert pool_workers(SimpleNamespace(executor="local", workers=2), 5) == 1
    assert pool_workers(SimpleNamespace(executor="ray", workers=8), 5) == 1  # Ray's workers may be elsewhere


@pytest.mark.slow
def test_cells_aggregated_on_two_processes_equal_the_serial_aggregation(tmp_path, monkeypatch):
    serial = tmp_path / "serial"
    # the reference: one thread, as each of the pool's workers, so that sums reduce in the same order
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            evaluate(RunConfig(**GRID, out=str(serial)), argv=["test"])
    finally:
        torch.set_num_threads(threads)
    pooled = tmp_path / "pooled"
    shutil.copytree(serial, pooled)
    with sqlite3.connect(pooled / "results.sqlite") as db:  # what the pool's workers fit must come back
        db.execute("DELETE FROM run WHERE key LIKE 'attacker_fits:%'")
    import bench.aggregate.pool as pool

    def serial_path_taken(*a, **k):
        raise AssertionError("aggregated in the driver, not on the pool")

    monkeypatch.setattr(pool, "aggregate_cell", serial_path_taken)
    # every image is stored: this run only aggregates, all cells again, on two processes
    evaluate(RunConfig(**GRID, out=str(pooled), executor="processes", workers=2, reaggregate=True), argv=["test"])
    rows_serial, _ = _aggregates(serial)
    rows_pooled, _ = _aggregates(pooled)
    assert len(rows_pooled) > 100 and rows_pooled == rows_serial
    # the attackers' fit records come back from the workers into the run's metadata
    fits = _meta(pooled, "attacker_fits:lfw-sample")
    assert "semi-linear" in fits and fits == _meta(serial, "attacker_fits:lfw-sample")
