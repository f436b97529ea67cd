"""The Ray executor: a small grid on a local two-worker Ray cluster equals the local executor's,
written once through the driver; the recording sink replays idempotently."""
import sqlite3

import pytest
import torch

from bench import RunConfig, evaluate
from bench.run.executor import RecordingSink, replay
from bench.store.results import ResultStore
from tests.bench.run.test_harness import _aggregates

GRID = dict(methods=["blur", "dppix"], eps=[1.0, 4.0], limit=10, quiet=True, recognizers=["dlib"],
            detectors=["mtcnn"], metrics=["reid", "detection", "landmarks", "background"])


def test_replay_writes_once_and_skips_known_originals(tmp_path):
    sink = RecordingSink()
    sink.put_original("d", "a", "p", "/x.jpg", "sha", {"faces": []})
    sink.skip("d", "b", "/y.jpg", "original", "zero-byte file")
    sink.put_image("d", "blur", None, 0, "a", "ok", "", {"r": 1}, None)
    store = ResultStore(tmp_path)
    store.put_original("d", "a", "p", "/x.jpg", "sha", {"faces": [], "kept": True})
    assert replay(sink.ops, store) == 1
    assert replay(sink.ops, store) == 1  # a task retried after a crash writes the same rows
    assert store.original("d", "a")["kept"] is True
    assert store.done_images("d", "blur", None, 0) == {"a"} and len(store.skipped("d")) == 1


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The reference: this process, one thread (as each worker), so floats reduce in the same order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("local")
        evaluate(RunConfig(**GRID, out=str(out)), argv=["test"])
    finally:
        torch.set_num_threads(threads)
    return out


def test_process_pool_equals_local(tmp_path, local_run):
    run = tmp_path / "processes"
    evaluate(RunConfig(**GRID, out=str(run), executor="processes", workers=2, shard_size=3), argv=["test"])
    assert _aggregates(run) == _aggregates(local_run)


def test_ray_two_workers_equal_local(tmp_path, local_run):
    ray = pytest.importorskip("ray", reason="Ray is in the test extras; install .[test]")
    local = local_run
    remote = tmp_path / "ray"
    try:
        evaluate(RunConfig(**GRID, out=str(remote), executor="ray", workers=2, shard_size=4), argv=["test"])
        assert ray.cluster_resources().get("CPU") == 2
    finally:
        ray.shutdown()
    rows_local, n_local = _aggregates(local)
    rows_ray, n_ray = _aggregates(remote)
    # 10 images x 4 cells (original, blur, dppix at 2 ε) + dppix's second releases (lazy attackers),
    # and the 10 training images of the semi attackers (the sample's devtrain people) x the 4 cells
    assert n_ray == n_local == (100, 100)
    assert rows_ray == rows_local
    meta = dict(sqlite3.connect(remote / "results.sqlite").execute("SELECT key, value FROM run"))
    assert '"ray"' in meta["executor"]
