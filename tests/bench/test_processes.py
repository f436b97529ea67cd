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
