"""Every docstring example of the metrics runs and prints what it says (torchmetrics' rule: the
example in the docs is code the tests run)."""
import doctest
import importlib

import pytest

MODULES = ["bench.metrics.reid_scores", "bench.metrics.detection", "bench.metrics.landmarks", "bench.metrics.background",
           "bench.metrics.intervals", "bench.metrics.fid", "bench.export", "bench.metrics.expression",
           "kpdp.faces.expression", "bench.attackers.data", "bench.attackers.sanity",
           "kpdp.faces.pose", "bench.metrics.pose", "bench.metrics.diversity",
           "bench.metrics.attributes", "bench.attribute_probes", "kpdp.faces.facenet_torch",
           "bench.report", "bench.registry", "bench.cli_run", "tests.benchmarks.grid_bound", "bench.store",
           "bench.figures", "bench.analysis", "bench.dependencies", "bench.metrics.seam", "kpdp.faces.crops", "kpdp.faces.blend", "bench.report_spec"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
