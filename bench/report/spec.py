"""A report spec (``reports/<name>.toml``): which data set, methods, ε and metrics a report's
tables and figures show, and the selection of results rows it makes. A leaf of the report
modules: :mod:`bench.report.page` and :mod:`bench.report.figures` both read it."""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.methods import canonical
from bench.store.results import eps_key


class LabelError(ValueError):
    """Report labels that would put two methods in one row."""


@dataclass
class ReportSpec:
    title: str = "kpdp-bench report"
    dataset: str | None = None
    methods: list[str] | None = None
    eps: list[float] | None = None
    metrics: list[tuple] | None = None  # (metric, backend[, attacker]); None: the summary's columns
    runs: list[str] = field(default_factory=list)
    #: method spec -> the name a reader sees in tables and figures (``[method_labels]`` in the TOML;
    #: a README spec's ``[labels]`` are column titles), for variants whose full specs are
    #: unreadable, e.g. checkpoints that differ in a weights path
    method_labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self.method_labels = {canonical(m): str(name) for m, name in self.method_labels.items()}
        names = list(self.method_labels.values())
        clash = sorted({n for n in names if names.count(n) > 1}
                       | {n for m, n in self.method_labels.items() if n in (self.methods or []) and n != m})
        if clash:
            raise LabelError(f"report labels must name one method each: {', '.join(clash)} would merge rows")

    @classmethod
    def load(cls, path: Path) -> "ReportSpec":
        d = tomllib.loads(Path(path).read_text())
        metrics = [_metric_column(m) for m in d.get("metrics", [])]
        methods = [canonical(m) for m in d["methods"]] if d.get("methods") else None  # as runs store them
        return cls(title=d.get("title", cls.title), dataset=d.get("dataset"), methods=methods,
                   eps=d.get("eps"), metrics=metrics or None, runs=d.get("runs", []),
                   method_labels=d.get("method_labels", {}))

    def label(self, method: str) -> str:
        """The name a reader sees for ``method`` (its spec when it has no label).

        Example:
            >>> spec = ReportSpec(method_labels={"kpdp[generator=v3,weights=/w/g2452.safetensors]": "v3 step 2452"})
            >>> spec.label("kpdp[generator=v3,weights=/w/g2452.safetensors]"), spec.label("blur")
            ('v3 step 2452', 'blur')
        """
        return self.method_labels.get(method, method)

    def relabelled(self, df: pd.DataFrame) -> tuple[pd.DataFrame, "ReportSpec"]:
        """``df`` and this spec with every method spec replaced by its label: what tables and figures
        show. Stores are still read by spec (samples), so only what is drawn is relabelled."""
        if not self.method_labels:
            return df, self
        present = set(df["method"])
        clash = sorted(n for m, n in self.method_labels.items() if n in present and n != m and m in present)
        if clash:
            raise LabelError(f"report labels must name one method each: {', '.join(clash)} is also a method "
                             "of the runs, and would merge rows")
        shown = df.copy()
        shown["method"] = shown["method"].map(self.label)
        methods = [self.label(m) for m in self.methods] if self.methods else None
        return shown, dataclasses.replace(self, methods=methods, method_labels={})

    def eps_keys(self) -> set[str] | None:
        """The spec's ε as a run stores them (``""``: a method without ε); None: every ε."""
        return {"", *(eps_key(float(e)) for e in self.eps)} if self.eps else None

    def holds(self, method: str, eps: str | None) -> bool:
        """Whether a run's cell (method, stored ε) belongs to this spec's page."""
        return (not self.methods or method in self.methods) and (not self.eps or (eps or "") in self.eps_keys())


def _metric_column(text: str) -> tuple[str, str, str | None]:
    """``metric[@backend[/attacker]]`` -> (metric, backend, attacker or None = the headline rows).

    Example:
        >>> _metric_column("reid_rank1@max/lazy"), _metric_column("fid@inception-2015-12-05")
        (('reid_rank1', 'max', 'lazy'), ('fid', 'inception-2015-12-05', None))
    """
    metric, _, rest = text.partition("@")
    backend, _, attacker = rest.partition("/")
    return metric, backend, attacker or None


def select(df: pd.DataFrame, spec: ReportSpec) -> pd.DataFrame:
    d = df
    if spec.dataset:
        d = d[d.dataset == spec.dataset]
    if spec.methods:
        d = d[d.method.isin(spec.methods)]
    if spec.eps:
        d = d[d.eps.isin(spec.eps_keys())]
    return d
