"""What every metric function returns.

Why there are no torchmetrics-style metric classes here: the harness measures each image once
(cached per image) and aggregates a cell's records later, so a metric is a
:class:`~bench.metrics.registry.MetricGroup` (``original`` / ``anonymised`` per image,
``aggregate`` per cell) built on the plain functions of its module (``detected``, ``nme``,
``background_psnr_ssim``, ``frechet_distance``, ``reid_rank1``, ...), which the tests test and the
harness runs. Whole-batch classes with ``update``/``compute`` were a second path that only the
tests ran (issue 37); a notebook calls the functions, or :func:`bench.evaluate`."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class MetricResult:
    """A value, the number of items it was computed on, and the failures with their reasons."""

    value: float
    n: int
    failures: Counter = field(default_factory=Counter)

    @property
    def n_failed(self) -> int:
        return sum(self.failures.values())

    def __repr__(self) -> str:
        fail = f", failed={dict(self.failures)}" if self.failures else ""
        return f"MetricResult(value={self.value:.4f}, n={self.n}{fail})"

