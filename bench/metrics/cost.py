"""What every run reports whatever ``--metrics`` says: the method's own time per image, and how
many images were not evaluated (the reasons are in the run's store)."""
from __future__ import annotations

import numpy as np

from bench.metrics.intervals import bootstrap_mean
from bench.metrics.registry import MetricGroup, MetricSpec, Row, register_group


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

    def aggregate(self, cell) -> list[Row]:
        rows = []
        secs = [(r["sec"], i) for r, i in zip(cell.probe_records(), cell.probe_identities) if "sec" in r]
        if secs:
            v = np.array([x for x, _ in secs])
            rows.append(Row("sec_per_image", "", float(v.mean()), len(v),
                            *bootstrap_mean(v, [i for _, i in secs], seed=cell.boot_seed)))
        n = cell.n_skipped + cell.n_failed
        rows.append(Row("skipped", "", float(n), n))
        return rows
