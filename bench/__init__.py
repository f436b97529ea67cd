"""kpdp-bench: the benchmark harness. ``bench.evaluate(RunConfig(...))`` returns a DataFrame."""
from .evaluate import DatasetSpec, RunConfig, evaluate

__all__ = ["DatasetSpec", "RunConfig", "evaluate"]
