"""The harness's process pools: one set-up for every worker, results in order, no worker left behind."""
import multiprocessing as mp
import signal
import time

from bench.processes import map_on_processes


def _square_slowly(x):
    import time

    time.sleep(0.2 * x)
    return x * x


def _no_setup():
    pass


def test_map_on_processes_keeps_order_and_stops_its_workers_when_left():
    """The pools of lfw-verify and of the verification thresholds: results in input order; a
    caller that stops reading (an interrupt, an error) leaves no worker running."""
    others = set(mp.active_children())  # processes that earlier tests left are not this pool's
    assert list(map_on_processes(_square_slowly, [3, 0, 2, 1], 2, _no_setup)) == [9, 0, 4, 1]
    results = map_on_processes(_square_slowly, [0, 150, 150, 150], 2, _no_setup)
    assert next(results) == 0
    workers = set(mp.active_children()) - others
    assert len(workers) == 2
    started = time.monotonic()
    results.close()  # GeneratorExit inside: the workers sleeping 30 s are terminated, not awaited
    assert not workers & set(mp.active_children())
    assert all(w.exitcode is not None for w in workers)
    assert time.monotonic() - started < 20  # not awaited: their tasks sleep 30 s


def _worker_state(_):
    import torch

    return torch.get_num_threads(), signal.getsignal(signal.SIGINT) == signal.SIG_IGN, _SETUP.get("arg")


_SETUP: dict = {}


def _remember(arg):
    _SETUP["arg"] = arg


def test_every_worker_runs_the_one_set_up_before_the_pools_own():
    """One thread per worker (the pool fills the cores), Ctrl-C left to the driver, and then the
    pool's own initializer with its arguments."""
    states = list(map_on_processes(_worker_state, range(4), 2, _remember, ("from the driver",)))
    assert states == [(1, True, "from the driver")] * 4
    assert list(map_on_processes(_worker_state, range(1), 1, threads=2)) == [(2, True, None)]


def _stop_by_exception_then_load_slowly():
    """A worker set-up under a library that turns SIGTERM into an exception (as torch's elastic agent does)."""
    import sys

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    print("loading", flush=True)
    time.sleep(60)


_STOP_WHILE_LOADING = """
import sys, time
from bench.processes import spawn_pool, terminate
from tests.bench.test_processes import _stop_by_exception_then_load_slowly, _no_setup
pool = spawn_pool(1, _stop_by_exception_then_load_slowly)
pool.submit(_no_setup)
time.sleep(float(sys.argv[1]))
started = time.monotonic()
terminate(pool)
print(f"stopped in {time.monotonic() - started:.1f} s", flush=True)
"""


def test_a_worker_stopped_while_it_loads_its_models_prints_nothing():
    """An interrupted run stops its pool; a worker still in its set-up dies quietly, whatever signal
    handler its libraries installed (one fresh-clone CI saw "Exception in initializer" and a traceback)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    r = subprocess.run([sys.executable, "-c", _STOP_WHILE_LOADING, "8"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "loading" in r.stdout  # the worker was in its set-up when it was stopped
    assert "stopped in" in r.stdout and float(r.stdout.split("stopped in ")[1].split()[0]) < 10
    assert "Traceback" not in r.stderr and "Exception in initializer" not in r.stderr, r.stderr


_CTRL_C_WHILE_STARTING = """
import os, signal
from bench.processes import spawn_pool
pool = spawn_pool(2)
futures = [pool.submit(os.getpid) for _ in range(2)]
for pid in list(pool._processes):  # both spawned by now, still in Python's start-up
    os.kill(pid, signal.SIGINT)
print("answered by", sorted({f.result(timeout=120) for f in futures}), "of", sorted(pool._processes), flush=True)
pool.shutdown()
"""


def test_a_ctrl_c_while_workers_are_still_starting_python_is_left_to_the_driver():
    """Ctrl-C reaches the driver and every worker; one that comes in the second a worker spends in
    Python's start-up, before any code of ours can ignore it, neither kills the worker nor prints."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    r = subprocess.run([sys.executable, "-c", _CTRL_C_WHILE_STARTING], cwd=ROOT, capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0, r.stderr
    assert "answered by" in r.stdout, r.stdout
    assert "Traceback" not in r.stderr and "KeyboardInterrupt" not in r.stderr, r.stderr
