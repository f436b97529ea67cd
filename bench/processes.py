"""Process pools on this machine, started one way.

Every pool of the harness (measuring images, aggregating cells, embedding LFW's pairs, verifying a
recognizer) spawns its workers here, and each worker runs :func:`init_worker` before the pool's own
initializer: it exits with the driver, leaves Ctrl-C to the driver, and computes on ``threads``
threads (one by default: the pool, not each worker, fills the cores; dlib's models are
single-threaded anyway).
"""
from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor

_THREAD_LIMITS: list = []  # this worker's threadpoolctl limiter, kept alive for the worker's life


def guard_worker() -> None:
    """In a pool's worker: exit when the driver is gone, and leave Ctrl-C to the driver."""
    parent = os.getppid()

    def exit_with_parent():  # a SIGKILLed driver cannot shut its pool down: do not outlive it
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=exit_with_parent, daemon=True).start()
    # Ctrl-C reaches the whole process group: the driver alone decides, and stops the pool
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):  # born with SIGINT held (_Pool): a pending one is now dropped
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def init_worker(threads: int = 1) -> None:
    """The set-up every pool worker runs first (see the module docstring)."""
    guard_worker()  # first: importing torch takes seconds, and a Ctrl-C may come in them
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    _THREAD_LIMITS[:] = [threadpool_limits(threads)]


def _start_worker(threads: int, initializer, initargs) -> None:
    init_worker(threads)
    if initializer is not None:
        try:
            initializer(*initargs)
        except (KeyboardInterrupt, SystemExit):
            # the driver's stop, turned into an exception by a handler some library installed: a stop,
            # not a failure, so no "Exception in initializer" traceback on the run's terminal
            os._exit(1)


class _Pool(ProcessPoolExecutor):
    """Workers are spawned with SIGINT blocked; :func:`guard_worker` ignores it, then unblocks it.

    A child inherits its parent's signal mask through fork and exec, so a Ctrl-C that comes while
    a worker is still in Python's start-up and spawn bootstrap (about a second, before any code of
    ours runs) waits, blocked, and is dropped once the worker ignores SIGINT. Without the mask
    that worker died printing a KeyboardInterrupt traceback on the run's terminal. The driver
    holds SIGINT only for the fork itself; one that comes then is raised just after it."""

    def _adjust_process_count(self):  # where CPython starts spawned workers (3.9-3.13; 3.11+ via _spawn_process)
        if not hasattr(signal, "pthread_sigmask"):
            return super()._adjust_process_count()
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()  # its own start unblocks SIGINT: not inside our window
        held = signal.pthread_sigmask(signal.SIG_BLOCK, ())  # read only: a pending Ctrl-C raises here, unblocked
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            return super()._adjust_process_count()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)


def spawn_pool(workers: int, initializer=None, initargs=(), threads: int = 1):
    """A ProcessPoolExecutor of ``workers`` spawned processes, each set up by :func:`init_worker`
    and then ``initializer(*initargs)``. Spawned, not forked: the driver has torch's and OpenMP's
    threads running, which fork would copy half-alive."""
    import multiprocessing as mp

    return _Pool(workers, mp_context=mp.get_context("spawn"), initializer=_start_worker,
                 initargs=(threads, initializer, initargs))


def map_on_processes(fn, items, workers: int, initializer=None, initargs=(), threads: int = 1):
    """``fn(item)`` for each item, in order, on a :func:`spawn_pool` (a generator). An interrupt, or
    a caller that stops reading, stops the workers at once instead of waiting for their running tasks."""
    pool = spawn_pool(workers, initializer, initargs, threads)
    try:
        yield from pool.map(fn, items)
    except BaseException:
        terminate(pool)
        raise
    pool.shutdown(wait=True)


def terminate(pool) -> None:
    """Stop a ProcessPoolExecutor without waiting for its running tasks (shutdown() would).

    SIGKILL, not SIGTERM: a worker owns nothing to clean up (the driver alone writes the results; the
    feature cache is SQLite, whole after a kill), and a killed worker cannot print. A SIGTERM can be
    caught and turned into an exception: one fresh-clone CI saw a worker of an interrupted run print
    "Exception in initializer" and a traceback (not reproduced in 22 reruns under load)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)
    for p in procs:
        if p.is_alive():
            p.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        p.join(timeout=30)  # exitcode may stay None: the manager thread reaped it (below)
    # The pool's manager thread joins the same workers; whichever thread's waitpid loses the race
    # reads no exit code, so a worker reads as alive until that thread is done (a CI run saw one).
    if manager is not None:
        manager.join(timeout=30)
