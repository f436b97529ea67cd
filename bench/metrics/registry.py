"""The one declaration of every metric: its public name, the backend column it fills, the group
that computes it, which way is better, its gate tolerance, its display label, and its definition
and unit (the glossary prints them).

``aggregate``, ``export``, ``report`` and ``check`` read these declarations; nothing else lists
metric names. A *group* (what ``--metrics`` selects) is the unit of computation: it says which
backends it needs, measures each original and each anonymised image (cached by its ``version``),
and aggregates a cell's per-image records into rows with intervals. Adding a metric is one module
that defines a :class:`MetricGroup` subclass decorated with :func:`register_group`, and its test;
third-party groups join through the entry-point group ``kpdp_bench.metrics``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from bench.metrics.intervals import bootstrap_mean, bootstrap_replicates
from kpdp.registry import Registry

ENTRY_POINT_GROUP = "kpdp_bench.metrics"
#: the backend (and attacker) value of a privacy row that holds the strongest: the highest
#: re-identification over the recognizers (backend) and over the valid attackers (attacker)
STRONGEST = "max"
#: built-in groups, imported lazily (their modules pull in torch models only when they measure)
BUILTIN_MODULES = ("bench.attackers.reid_group", "bench.metrics.detection", "bench.metrics.fid", "bench.metrics.landmarks",
                   "bench.metrics.background", "bench.metrics.expression", "bench.metrics.attributes",
                   "bench.metrics.pose", "bench.metrics.diversity", "bench.metrics.seam", "bench.metrics.skin_tone",
                   "bench.metrics.cost")


@dataclass(frozen=True)
class MetricSpec:
    """One public result name (``metrics.csv``'s ``metric`` column)."""

    name: str
    group: str
    backend: str  # what fills the backend column: "recognizer", "detector", "landmarker", a fixed name, or ""
    higher_is_better: bool | None  # None: neither (a count, a cost reported for information)
    label: str  # short display label for tables and figures
    tolerance: float | None = None  # the gate's absolute tolerance; None: not gated
    privacy: bool = False  # a re-identification rate: the headline row is its `max`
    rate: bool = False  # a proportion in [0, 1] (figures fix the axis)
    headline: str | None = None  # the role it plays in one-line summaries and figures: privacy, detection,
    #                              quality or cost (one metric per role)
    in_tables: bool = True  # False: in metrics.csv and summary.md, not in paper tables by default
    definition: str = ""  # one plain-language line for the glossary (after ../shared/docs/metrics.md)
    unit: str = ""  # the unit a reader reads the value in

    @property
    def worse(self) -> str | None:
        """The direction the gate treats as a regression: 'up', 'down' or None."""
        if self.higher_is_better is None:
            return None
        return "down" if self.higher_is_better else "up"


class Row(NamedTuple):
    """One aggregate: the long format's value columns."""

    metric: str
    backend: str
    value: float
    n: int
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    attacker: str = ""  # re-identification rows: who attacked (``max``: the strongest valid one)
    valid: bool = True  # False: the attacker failed its sanity check (reported, never read as privacy)


class Paired(NamedTuple):
    """One statistic of two cells on the images both measured, and its bootstrap replicates under
    one draw of identities for both cells (``replicates``: (n_boot, 2), columns A and B)."""

    a: float
    b: float
    replicates: np.ndarray
    n: int  # images both cells measured
    people: int


#: a group's per-image values: {(metric, backend): (positions in ``cell.probes``, values)}
PerImage = dict[tuple[str, str], tuple[list[int], np.ndarray]]


def mean_rows(cell, per_image: PerImage) -> list[Row]:
    """One row per statistic that is a mean over images, with its identity-bootstrap interval."""
    ids = cell.probe_identities
    return [Row(metric, backend, float(v.mean()), len(v), *bootstrap_mean(v, ids[list(pos)], seed=cell.boot_seed))
            for (metric, backend), (pos, v) in per_image.items() if len(v)]


def identities_by_image(cell) -> dict:
    """{image id: its original's identity} of a cell's probes: how two cells' images are paired."""
    return dict(zip((r[0] for r in cell.probes), cell.probe_identities))


def paired_means(cell_a, cell_b, per_a: PerImage, per_b: PerImage, n_boot: int, seed: int) -> dict:
    """:class:`Paired` of every mean-over-images statistic both cells have, on the images both
    measured (matched by image id; each image's identity is its original's)."""
    out = {}
    who = identities_by_image(cell_a)
    for key in (k for k in per_a if k in per_b):
        a = {cell_a.probes[p][0]: float(v) for p, v in zip(*per_a[key])}
        b = {cell_b.probes[p][0]: float(v) for p, v in zip(*per_b[key])}
        common = [i for i in a if i in b]
        if not common:
            continue
        groups = [who[i] for i in common]
        values = np.array([[a[i] for i in common], [b[i] for i in common]])
        out[key] = Paired(float(values[0].mean()), float(values[1].mean()),
                          bootstrap_replicates(values, groups, n_boot, seed), len(common), len(set(groups)))
    return out


class MetricGroup:
    """Base class of a group of metrics computed together (see the module docstring).

    ``needs``: backend kinds the group loads (``recognizers``, ``detectors``, ``landmarker``,
    ``inception``); a run whose ``--metrics`` omits the group loads none of them.
    ``version``: bump it whenever the code that measures changes; it is part of every cache key,
    so a fixed metric never reuses a stale record.
    """

    name: str = ""
    version: str = "1"
    metrics: tuple[MetricSpec, ...] = ()
    needs: tuple[str, ...] = ()
    uses_detectors: tuple[str, ...] = ()  # detectors it calls whatever --detectors says (part of its cache key)
    selectable: bool = True  # False: always computed (cost, skipped), not a --metrics choice
    cached: bool = True  # False: cheap, recomputed every time (no cache round trip)

    def original(self, ctx) -> tuple[dict, dict]:
        """(record, features) of an original image. ``record['self']`` (optional) is what
        :meth:`anonymised` would give for an output equal to the original."""
        return {}, {}

    def anonymised(self, ctx) -> tuple[dict, dict]:
        """(record, features) of an anonymised image; ``ctx.orig_record`` holds :meth:`original`'s."""
        return {}, {}

    def finish(self, record: dict, ctx) -> dict:
        """Uncached additions to an anonymised image's record (e.g. what depends on the method's
        target, not on the pixels)."""
        return {}

    def aggregate(self, cell) -> list[Row]:
        raise NotImplementedError

    def per_image(self, cell) -> PerImage:
        """The group's statistics that are means over images, per image (what :meth:`aggregate`
        averages, and what ``bench compare`` pairs); empty when it has none."""
        return {}

    def paired(self, cell_a, cell_b, n_boot: int, seed: int) -> dict[tuple[str, str], Paired]:
        """{(metric, backend): :class:`Paired`} of the two cells (same data set, same images): the
        same people drawn for both in every replicate, so the difference gets its own interval.
        By default the :meth:`per_image` means; a group with other statistics overrides it."""
        return paired_means(cell_a, cell_b, self.per_image(cell_a), self.per_image(cell_b), n_boot, seed)


def _check(name: str, cls: type[MetricGroup]) -> None:
    others = [g for n, g in GROUPS.registered().items() if n != name and not isinstance(g, str)]
    clash = {m.name for g in others for m in g.metrics} & {m.name for m in cls.metrics}
    if clash:
        raise ValueError(f"metric group '{name}' redefines {sorted(clash)}")


GROUPS = Registry("metric group", BUILTIN_MODULES, ENTRY_POINT_GROUP, check=_check)
#: class decorator: make a metric group known by its ``name``
register_group = GROUPS.register


def groups() -> dict[str, type[MetricGroup]]:
    """Every group, built-ins first in :data:`BUILTIN_MODULES` order (the order of tables)."""
    return dict(GROUPS.items())


def selectable_groups() -> list[str]:
    return [n for n, g in groups().items() if g.selectable]


def get_group(name: str) -> type[MetricGroup]:
    g = groups()
    if name not in g or not g[name].selectable:
        raise KeyError(f"unknown metric group '{name}'; valid: {', '.join(selectable_groups())}")
    return g[name]


def all_metrics() -> dict[str, MetricSpec]:
    """Every declared metric by name, in group order."""
    return {m.name: m for g in groups().values() for m in g.metrics}


def metric(name: str) -> MetricSpec:
    specs = all_metrics()
    if name not in specs:
        raise KeyError(f"unknown metric '{name}'; known: {', '.join(specs)}")
    return specs[name]


def headline(role: str) -> MetricSpec:
    """The metric that plays ``role`` (privacy, detection, quality, cost) in summaries and figures."""
    for m in all_metrics().values():
        if m.headline == role:
            return m
    raise KeyError(f"no metric has the headline role '{role}'")


def default_backend(spec: MetricSpec, present: list[str]) -> str | None:
    """The backend column a summary shows for ``spec``: ``max`` for privacy metrics, the fixed
    name or '' when there is one, else the first of ``present``."""
    if spec.privacy:
        return STRONGEST
    if spec.backend not in ("recognizer", "detector", "landmarker"):
        return spec.backend
    return present[0] if present else None


def versions() -> dict[str, str]:
    """Code version of every group (recorded in each run)."""
    return {n: g.version for n, g in groups().items()}
