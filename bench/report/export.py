"""``metrics.csv`` (long format, a public interface: columns are only appended) and ``summary.md``.

Which columns the summary shows, and in which order, comes from the metric registry: every
declared metric present in the results, privacy metrics by their strongest recognizer (``max``).
"""
from __future__ import annotations

import math

import pandas as pd

from bench.metrics import registry
from bench.metrics.registry import STRONGEST
from bench.store import provenance
from bench.store.results import CSV_COLUMNS


def column_name(metric: str, backend: str) -> str:
    spec = registry.all_metrics().get(metric)
    fixed = spec is not None and spec.backend == backend  # one fixed backend (fid's Inception): no brackets
    return metric + (f"[{backend}]" if backend and not fixed else "")


def summary_columns(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(metric, backend) pairs of the summary, in registry order."""
    present = list(dict.fromkeys(zip(df["metric"], df["backend"])))
    out = []
    for name, spec in registry.all_metrics().items():
        for m, b in present:
            if m == name and (not spec.privacy or b == STRONGEST):
                out.append((m, b))
    return out


def with_attacker_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``attacker`` and ``valid`` as readers expect them, also for results written before
    attackers existed (no ``attacker``: one attacker, the ignorant one; every row valid)."""
    if "attacker" not in df:
        df["attacker"] = ""
    df["valid"] = pd.to_numeric(df["valid"], errors="coerce").fillna(1).astype(int) if "valid" in df else 1
    return df


def headline_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows tables show: metrics without an attacker, and for re-identification the strongest
    valid attack (``attacker = max``). Results written before attackers existed have no
    ``attacker`` column: their re-identification rows were the ignorant attacker's and are kept."""
    if "attacker" not in df:
        return df
    a = df["attacker"].fillna("").astype(str)
    return df[a.isin(["", STRONGEST])]


def strongest_attacker(df: pd.DataFrame) -> pd.Series:
    """Per (dataset, method, eps): the attacker whose headline privacy metric (``backend = max``,
    seeds averaged) is highest among the valid ones; '' where there is none."""
    if "attacker" not in df or df.empty:
        return pd.Series(dtype=str)
    spec = registry.headline("privacy")
    d = df[(df["metric"] == spec.name) & (df["backend"] == STRONGEST)].copy()
    d["attacker"] = d["attacker"].fillna("").astype(str)
    valid = pd.to_numeric(d["valid"], errors="coerce").fillna(1) if "valid" in d else 1
    d = d[(d["attacker"] != STRONGEST) & (d["attacker"] != "") & (valid != 0)]
    if d.empty:
        return pd.Series(dtype=str)
    d["value"] = pd.to_numeric(d["value"], errors="coerce")
    mean = d.groupby(["dataset", "method", "eps", "attacker"], sort=False)["value"].mean().reset_index()
    best = mean.loc[mean.groupby(["dataset", "method", "eps"], sort=False)["value"].idxmax()]
    return best.set_index(["dataset", "method", "eps"])["attacker"]


def wide_table(df: pd.DataFrame, intervals: bool = False) -> pd.DataFrame:
    """methods (x ε) as rows, the summary metrics as columns, seeds averaged. With ``intervals``
    each cell is a string ``value [low, high]`` (the interval of a single seed; several seeds: the
    widest span of their intervals)."""
    if df.empty:
        return pd.DataFrame()
    winners = strongest_attacker(df)
    d = headline_rows(df).copy()
    cols = summary_columns(d)
    d["col"] = [column_name(m, b) for m, b in zip(d["metric"], d["backend"])]
    order = [column_name(m, b) for m, b in cols]
    d = d[d["col"].isin(order)]
    for c in ("value", "ci_low", "ci_high"):
        d[c] = pd.to_numeric(d[c], errors="coerce") if c in d else float("nan")
    keys = ["dataset", "method", "eps", "col"]
    grouped = d.groupby(keys, sort=False)  # only the (method, ε) pairs that exist, NaN values kept
    t = grouped["value"].mean().unstack("col")
    t = t[[c for c in order if c in t.columns]]
    if len(winners):
        # the privacy column is the strongest attack: say whose, next to it
        spec = registry.headline("privacy")
        at = list(t.columns).index(column_name(spec.name, STRONGEST)) + 1 if column_name(spec.name, STRONGEST) in t else 0
        t.insert(at, "attacker", [winners.get(i, "") for i in t.index])
    if not intervals:
        return t
    lo, hi = grouped["ci_low"].min().unstack("col"), grouped["ci_high"].max().unstack("col")
    out = t.astype(object)
    for c in t.columns:
        if c == "attacker":
            continue
        d = column_digits(t[c])
        for i in t.index:
            out.loc[i, c] = format_value(t.loc[i, c], lo.loc[i, c], hi.loc[i, c], digits=d)
    return out


def column_digits(values) -> int:
    """Decimals for a whole column, so that its values line up: 1 when any is 10 or more (FID),
    else 3.

    Example:
        >>> column_digits([30.2, 6.807, 0.0]), column_digits([0.975, 0.018])
        (1, 3)
    """
    finite = [abs(float(v)) for v in values if v is not None and v == v]
    return 1 if finite and max(finite) >= 10 else 3


def format_value(v, lo=math.nan, hi=math.nan, digits: int | None = None) -> str:
    """``0.074 [0.051, 0.102]``; the interval is left out when there is none. ``digits``: the
    column's (:func:`column_digits`); by default 1 for a value of 10 or more, else 3.

    Example:
        >>> format_value(0.0744, 0.0512, 0.1021)
        '0.074 [0.051, 0.102]'
        >>> format_value(6.8071, 6.5222, 7.3291, digits=1)
        '6.8 [6.5, 7.3]'
    """
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    d = digits if digits is not None else (1 if abs(v) >= 10 else 3)
    s = f"{_unsigned_zero(v, d):.{d}f}"
    if lo is not None and hi is not None and not (math.isnan(lo) or math.isnan(hi)):
        s += f" [{_unsigned_zero(lo, d):.{d}f}, {_unsigned_zero(hi, d):.{d}f}]"
    return s


def _unsigned_zero(v: float, digits: int) -> float:
    """FID's estimate of a set against itself is ±1e-9: print 0.000, never -0.000.

    Example:
        >>> f"{_unsigned_zero(-1e-9, 3):.3f}"
        '0.000'
    """
    return round(v, digits) + 0.0


def markdown_table(t: pd.DataFrame) -> str:
    """A Markdown table; numbers with one number of decimals per column (:func:`column_digits`),
    a missing value as ``–``.

    Example:
        >>> print(markdown_table(pd.DataFrame({"method": ["blur", "kpdp"], "fid": [30.197, 6.8071],
        ...                                    "nme": [float("nan"), 0.0371]})), end="")
        | index | method | fid | nme |
        |---|---|---|---|
        | 0 | blur | 30.2 | – |
        | 1 | kpdp | 6.8 | 0.037 |
    """
    if t.empty:
        return "(no results)\n"
    t = t.reset_index()
    cols = list(t.columns)
    digits = {c: column_digits([v for v in t[c] if isinstance(v, float)]) for c in cols}
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in t.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            cells.append(format_value(v, digits=digits[c]) if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_exports(store, df: pd.DataFrame) -> None:

    df[CSV_COLUMNS].to_csv(store.dir / "metrics.csv", index=False)
    # beside metrics.csv, so that a run folder copied into reports/ keeps what made its numbers
    provenance.write(store.dir, [provenance.read(store.dir)], provenance.code_version())
    skipped = store.skipped()
    text = "# Summary\n\nEach value with its 95 % interval (identity bootstrap for re-identification and means, " \
           "Wilson for detection and failure rates). Re-identification is the strongest valid attack " \
           "(`attacker` names it; every attacker's rows are in metrics.csv).\n\n" + markdown_table(wide_table(df, intervals=True))
    text += f"\nSkipped images: {len(skipped)}\n\n"
    if skipped:
        text += "| dataset | image | stage | reason |\n|---|---|---|---|\n"
        text += "".join(f"| {d} | {i} | {st} | {r} |\n" for d, i, _, st, r in skipped)
    (store.dir / "summary.md").write_text(text)


#: the end-of-run table's columns: (label, headline role or metric name, backend or None for the
#: summary's default, interval); roles are resolved when a table is made (the registry loads plugins)
TERMINAL_COLUMNS = (("strongest rank-1", "privacy", STRONGEST, True),
                    ("detection", "detection", None, True),
                    ("FID", "quality", None, False),
                    ("expression", "expression_agreement", None, False),
                    ("attributes", "attribute_agreement", "mean", False))
HEADLINE_ROLES = ("privacy", "detection", "quality", "cost")


def headline_table(df: pd.DataFrame, detector: str | None = None) -> pd.DataFrame:
    """What a terminal shows at the end of a run: per method and ε, the strongest valid attack's
    rank-1 with its interval and attacker, detection (with its interval), FID, expression and
    attribute agreement, and ``n`` (the probes); every other number is in ``summary.md`` and
    ``metrics.csv``. ``detector``: whose detection rate (the run's first; default: the summary's).
    Columns whose metric was not measured are left out."""
    if df.empty:
        return pd.DataFrame()
    with_ci, plain = wide_table(df, intervals=True), wide_table(df)
    out = pd.DataFrame(index=plain.index)
    present = list(dict.fromkeys(zip(df["metric"], df["backend"])))
    specs = registry.all_metrics()
    for label, name, backend, interval in TERMINAL_COLUMNS:
        spec = registry.headline(name) if name in HEADLINE_ROLES else specs.get(name)
        if spec is None:
            continue
        metric = spec.name
        if backend is None and spec.backend == "detector" and (metric, detector) in present:
            backend = detector
        if backend is None:
            backend = registry.default_backend(spec, [b for m, b in present if m == metric])
        col = column_name(metric, backend or "")
        if col not in plain:
            continue
        out[label] = with_ci[col] if interval else plain[col]
        if label == "strongest rank-1" and "attacker" in plain:
            out["attacker"] = plain["attacker"]
    privacy = headline_rows(df)
    privacy = privacy[(privacy["metric"] == registry.headline("privacy").name) & (privacy["backend"] == STRONGEST)]
    if len(privacy):
        n = pd.to_numeric(privacy["n"], errors="coerce").groupby([privacy[k] for k in ("dataset", "method", "eps")],
                                                                 sort=False).max()
        out["n"] = [int(n[i]) if i in n.index and n[i] == n[i] else "–" for i in out.index]
    return out


TERMINAL_WIDTH = 120
LONG_NAME = 28  # a method label longer than this (a variant with many parameters) gets a footnote


def text_table(t: pd.DataFrame, width: int = TERMINAL_WIDTH) -> str:
    """A plain table for a terminal: columns padded with spaces, numbers right-aligned, one number
    of decimals per column; the data set column only when there are several. When it would be
    wider than ``width``, long method labels become ``name[k]`` with ``[k] = label`` under the table.

    Example:
        >>> t = pd.DataFrame({"FID": [30.197, 6.8071]}, index=pd.MultiIndex.from_tuples(
        ...     [("lfw", "blur", ""), ("lfw", "kpdp", 1.0)], names=["dataset", "method", "eps"]))
        >>> print(text_table(t), end="")
        method  ε   FID
        blur    –  30.2
        kpdp    1   6.8
    """
    if t.empty:
        return "(no results)\n"
    t = t.reset_index()
    if t["dataset"].nunique() == 1:
        t = t.drop(columns="dataset")
    t = t.rename(columns={"eps": "ε"})
    legend = []
    if max(len(line) for line in _render(t).splitlines()) > width:
        long = [m for m in dict.fromkeys(t["method"]) if len(m) > LONG_NAME]
        short = {m: f"{m.split('[')[0]}[{k}]" for k, m in enumerate(long, 1)}
        legend = [f"[{k}] = {m}" for k, m in enumerate(long, 1)]
        t = t.assign(method=[short.get(m, m) for m in t["method"]])
    return _render(t) + "".join(line + "\n" for line in legend)


def _render(t: pd.DataFrame) -> str:
    cols = list(t.columns)
    cells = {c: [_cell(v, column_digits([x for x in t[c] if isinstance(x, float)])) for v in t[c]] for c in cols}
    cells["ε"] = [("–" if v in ("", None) or v != v else f"{float(v):g}") for v in t["ε"]]
    width = {c: max(len(str(c)), *(len(s) for s in cells[c])) for c in cols}
    right = {c: c not in ("method", "dataset", "attacker") for c in cols}
    right["ε"] = False

    def line(values):
        return "  ".join(v.rjust(width[c]) if right[c] else v.ljust(width[c]) for c, v in zip(cols, values)).rstrip()

    return "\n".join([line(cols)] + [line([cells[c][i] for c in cols]) for i in range(len(t))]) + "\n"


def _cell(v, digits: int) -> str:
    return format_value(v, digits=digits) if isinstance(v, float) else str(v)
