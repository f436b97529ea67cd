"""kpdp-bench: the benchmark harness. ``bench.run.evaluate(RunConfig(...))`` returns a DataFrame."""
from bench.run.evaluate import DatasetSpec, RunConfig, evaluate

__all__ = ["DatasetSpec", "RunConfig", "evaluate"]
