"""kpdp-bench: the benchmark harness. ``bench.evaluate(RunConfig(...))`` returns a DataFrame; the
stages it runs are the subpackages run, measure, store, aggregate, report (and cli, a thin shell)."""
from bench.run.evaluate import DatasetSpec, RunConfig, evaluate

__all__ = ["DatasetSpec", "RunConfig", "evaluate"]
