"""Seconds spent inside model calls (anonymiser, detectors, recognizers, landmarks, Inception),
so that a run can report how much of its wall time is the models' and how much the harness's."""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

MODEL_SECONDS: dict[str, float] = defaultdict(float)
MODEL_CALLS: dict[str, int] = defaultdict(int)
PHASES: dict[str, float] = defaultdict(float)  # wall seconds of the driver's phases (setup, grid, ...)


@contextmanager
def model_call(name: str):
    t = time.perf_counter()
    try:
        yield
    finally:
        MODEL_SECONDS[name] += time.perf_counter() - t
        MODEL_CALLS[name] += 1


@contextmanager
def phase(name: str):
    """Wall time of one stretch of the driver (``setup``, ``grid``, ``attacker training images``,
    ``aggregation``); setup and aggregation run on one core while the others idle, so the harness
    reports them as the run's serial stretches."""
    t = time.perf_counter()
    try:
        yield
    finally:
        PHASES[name] += time.perf_counter() - t


def reset() -> None:
    MODEL_SECONDS.clear()
    MODEL_CALLS.clear()
    PHASES.clear()


def snapshot() -> dict:
    return {"seconds": dict(MODEL_SECONDS), "calls": dict(MODEL_CALLS), "total": sum(MODEL_SECONDS.values()),
            "phases": dict(PHASES)}


def merge(snap: dict) -> None:
    """Add a worker's :func:`snapshot` (the Ray executor's actors time their own model calls)."""
    for k, v in snap.get("seconds", {}).items():
        MODEL_SECONDS[k] += v
    for k, v in snap.get("calls", {}).items():
        MODEL_CALLS[k] += v
