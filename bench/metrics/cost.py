"""What every run reports whatever ``--metrics`` says: the method's own time per image, and how
many images were not evaluated (the reasons are in the run's store)."""
from __future__ import annotations

import numpy as np

from bench.metrics.registry import MetricGroup, MetricSpec, PerImage, Row, mean_rows, register_group


@register_group
class CostGroup(MetricGroup):
    name = "cost"
    version = "1"
    selectable = False
    cached = False
    metrics = (MetricSpec("sec_per_image", "cost", "", None, "s/image", headline="cost", in_tables=False,
                          definition="the method's own time per image in the run",
                          unit="seconds"),
               MetricSpec("skipped", "cost", "", None, "skipped", in_tables=False,
                          definition="images not evaluated (the reasons are in the run's store)",
                          unit="images"))

    def per_image(self, cell) -> PerImage:
        recs = cell.probe_records()
        pos = [k for k, r in enumerate(recs) if "sec" in r]
        return {("sec_per_image", ""): (pos, np.array([recs[k]["sec"] for k in pos], np.float64))}

    def aggregate(self, cell) -> list[Row]:
        rows = mean_rows(cell, self.per_image(cell))
        n = cell.n_skipped + cell.n_failed
        rows.append(Row("skipped", "", float(n), n))
        return rows
