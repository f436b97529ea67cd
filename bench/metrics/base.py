"""What every metric returns, and the small base class they share (torchmetrics-style
``update`` / ``compute`` / ``reset``; each metric also has a functional twin)."""
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


class Metric:
    """Accumulates per-item state in ``update``; ``compute`` never mutates it."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.failures: Counter = Counter()
        self._reset()

    def _reset(self) -> None:
        raise NotImplementedError

    def fail(self, reason: str) -> None:
        self.failures[reason] += 1
