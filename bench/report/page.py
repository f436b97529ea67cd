"""``bench report``: paper tables (Markdown, CSV, LaTeX), figures, a sample grid and one
``index.html``, from one or more run directories. A report spec (``reports/<name>.toml``) fixes
which data set, methods, ε and metrics a table shows."""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.attackers import registry as attacker_registry
from bench.attackers.registry import IGNORANT
from bench.metrics import registry as metric_registry
from bench.metrics.registry import STRONGEST
from bench.report import glossary
from bench.report.export import (
    column_digits,
    column_name,
    format_value,
    headline_rows,
    strongest_attacker,
    summary_columns,
    with_attacker_columns,
)
from bench.report.figures import (
    attacker_figure,
    eps_figure,
    eps_text,
    frontier_figures,
    privacy_utility_figure,
    quality_figure,
)
from bench.report.glossary import direction
from bench.report.spec import ReportSpec, select  # noqa: F401  (ReportSpec: the API callers import from here)
from bench.store import provenance
from bench.report.samples import sample_grid
from bench.store.results import ROW_KEY


def load_runs(run_dirs: list[Path]) -> pd.DataFrame:
    frames = [pd.read_csv(Path(r) / "metrics.csv", keep_default_na=False) for r in run_dirs]
    df = pd.concat(frames, ignore_index=True)
    df["eps"] = df["eps"].astype(str)
    df["value"] = pd.to_numeric(df["value"], errors="coerce")  # an empty value (nothing measured) is NaN
    for c in ("ci_low", "ci_high"):  # results written before intervals existed have none
        df[c] = pd.to_numeric(df[c], errors="coerce") if c in df else float("nan")
    df = with_attacker_columns(df)
    df = df.drop_duplicates(subset=ROW_KEY, keep="last")
    return df


def _eps_label(e: str) -> str:
    """``–`` for a method without ε, ``∞`` for no noise.

    Example:
        >>> [_eps_label(e) for e in ("", "0.5", "16.0", "inf")]
        ['–', '0.5', '16', '∞']
    """
    if e in ("", "nan"):
        return "–"
    return "∞" if math.isinf(float(e)) else f"{float(e):g}"


def table_columns(d: pd.DataFrame, spec: ReportSpec) -> list[tuple[str, str, str | None]]:
    """(metric, backend, attacker) of each metric column: the spec's, else the summary's. A privacy
    metric of one recognizer (not ``max``) means the ignorant attacker's value; attacker None: the
    headline row (for privacy, the strongest valid attacker)."""

    specs = metric_registry.all_metrics()
    cols = [(m[0], m[1], m[2] if len(m) > 2 else None) for m in spec.metrics] if spec.metrics else \
        [(m, b, None) for m, b in summary_columns(d) if specs[m].in_tables]
    out = []
    for metric, backend, attacker in cols:
        if attacker is None and specs.get(metric) is not None and specs[metric].privacy and backend != STRONGEST:
            attacker = IGNORANT  # one recognizer's privacy number: the attacker it always meant
        out.append((metric, backend, attacker))
    return out


def column_title(metric: str, backend: str, attacker: str | None) -> str:
    return column_name(metric, backend) + (f" ({attacker})" if attacker else "")


def _cell_rows(de: pd.DataFrame, de_all: pd.DataFrame, metric: str, backend: str, attacker: str | None):
    if attacker is None:
        return de[(de.metric == metric) & (de.backend == backend)]
    who = [attacker, ""] if attacker == IGNORANT else [attacker]
    return de_all[(de_all.metric == metric) & (de_all.backend == backend) & (de_all.attacker.astype(str).isin(who))]


def _cell_value(v: pd.DataFrame, intervals: bool):
    """The mean over seeds, or with ``intervals`` (value, widest ci_low, widest ci_high)."""
    value = v.value.astype(float).mean() if len(v) else float("nan")
    if not intervals:
        return value
    lo = pd.to_numeric(v.get("ci_low", pd.Series(dtype=float)), errors="coerce").min()
    hi = pd.to_numeric(v.get("ci_high", pd.Series(dtype=float)), errors="coerce").max()
    return value, lo, hi


def table(df: pd.DataFrame, spec: ReportSpec, intervals: bool | str = False) -> pd.DataFrame:
    """Rows: method (ε); columns: metrics, then ``n`` (what the row's first measured value was
    computed on: probes for re-identification; the smallest over seeds). Seeds are averaged. With
    ``intervals`` each value is a string ``value [ci_low, ci_high]``; with ``intervals="columns"``
    (the CSV) each metric has numeric ``<column> ci_low`` and ``<column> ci_high`` columns beside it."""

    every = select(df, spec)
    winners = strongest_attacker(every)
    d = headline_rows(every)
    privacy = metric_registry.headline("privacy").name
    metrics = table_columns(d, spec)
    rows = []
    for m in spec.methods or list(dict.fromkeys(d.method)):
        dm = d[d.method == m]
        for e in sorted(set(dm.eps), key=lambda x: -1 if x == "" else float(x)):
            de = dm[dm.eps == e]
            de_all = every[(every.method == m) & (every.eps == e)]
            row = {"method": m, "eps": _eps_label(e)}
            ns = []
            for metric, backend, attacker in metrics:
                v = _cell_rows(de, de_all, metric, backend, attacker)
                if len(v):
                    ns.append(int(pd.to_numeric(v.n).min()))
                title = column_title(metric, backend, attacker)
                cell = _cell_value(v, bool(intervals))
                if intervals == "columns":
                    row[title], row[f"{title} ci_low"], row[f"{title} ci_high"] = cell
                else:
                    row[title] = cell  # (value, lo, hi) with intervals: formatted per column below
                if metric == privacy and backend == STRONGEST and attacker is None and len(winners):
                    row["attacker"] = winners.get((de.dataset.iloc[0], m, e), "") if len(de) else ""
            row["n"] = ns[0] if ns else 0  # the first column's: probes when it is re-identification
            rows.append(row)
    if intervals is True:
        _format_columns(rows, [column_title(*c) for c in metrics])
    return pd.DataFrame(rows)


def _format_columns(rows: list[dict], titles: list[str]) -> None:
    """``value [ci_low, ci_high]`` strings, with one number of decimals per column."""

    for title in titles:
        d = column_digits([r[title][0] for r in rows if title in r])
        for r in rows:
            if title in r:
                r[title] = format_value(*r[title], digits=d)


def glossary_columns(t: pd.DataFrame, d: pd.DataFrame, spec: ReportSpec) -> list:
    """The table's columns for :mod:`bench.report.glossary`: a fixed column's name, or
    ``(title, metric, backend, attacker)``."""
    by_title = {column_title(*c): c for c in table_columns(d, spec)}
    return [(c, *by_title[c]) if c in by_title else c for c in t.columns]


_LATEX = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$",
          "–": "--", "ε": r"$\varepsilon$", "∞": r"$\infty$", "≥": r"$\geq$", "…": r"\ldots{}"}


def latex_escape(text) -> str:
    r"""Text for a LaTeX table cell or caption.

    Example:
        >>> print(latex_escape("reid_rank1 (95 % intervals), ε – ∞"))
        reid\_rank1 (95 \% intervals), $\varepsilon$ -- $\infty$
    """
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def to_latex(t: pd.DataFrame, caption: str) -> str:
    cols = list(t.columns)
    esc = latex_escape
    lines = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{ll" + "r" * (len(cols) - 2) + "}",
             r"\toprule", " & ".join(esc(c) for c in cols) + r" \\", r"\midrule"]
    for _, r in t.iterrows():
        cells = [esc(r[c]) if not isinstance(r[c], float) else ("--" if math.isnan(r[c]) else f"{r[c]:.3f}")
                 for c in cols]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{esc(caption)}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_markdown(t: pd.DataFrame) -> str:
    cols = list(t.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in t.iterrows():
        out.append("| " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    return "\n".join(out) + "\n"


@dataclass
class ReportFigure:
    path: Path
    caption: str
    section: str  # frontier, attacker, other, extra (written, linked, not shown)
    width: int = 720  # pixels on the page; wide figures of several panels get the page's width

    def __post_init__(self):
        self.caption = self.caption[:1].upper() + self.caption[1:]


def _panel_words(panels) -> str:
    specs = metric_registry.all_metrics()
    return _and(f"{specs[n].label}{f' [{b}]' if b and b != specs[n].backend else ''} ({direction(specs[n])})"
                if n in specs else n for n, b in panels)


def _frontier_entries(df: pd.DataFrame, spec: ReportSpec, out: Path) -> list[ReportFigure]:
    privacy = metric_registry.headline("privacy")
    d = headline_rows(select(df, spec))
    several_eps = bool(len(d)) and d.groupby("method").eps.nunique().max() > 1
    labels = ("lines join one method's ε values; labels name ε (colour: method)" if several_eps
              else "labels name the method, and ε where it has one")
    return [ReportFigure(p, f"Privacy–utility frontier on {ds}: re-identification by the strongest attack "
                            f"(y; {direction(privacy)}) against {_panel_words(panels)}. Bars: 95 % intervals on "
                            f"both axes; {labels}.", "frontier", 1100)
            for p, ds, panels in frontier_figures(df, spec, out)]


def _eps_entries(df: pd.DataFrame, spec: ReportSpec, out: Path) -> list[ReportFigure]:
    privacy, detection = metric_registry.headline("privacy"), metric_registry.headline("detection")
    d = headline_rows(select(df, spec))
    if d[~d.eps.isin(["", "nan"])].eps.nunique() < 2:  # one ε: a curve against ε would be one point per method
        return []
    det_backend = metric_registry.default_backend(detection, list(dict.fromkeys(d[d.metric == detection.name].backend)))
    reid = eps_figure(d, privacy, STRONGEST, f"{privacy.label} (strongest attack)", out / "reid_vs_eps.png")
    det = eps_figure(d, detection, det_backend, f"{detection.label} [{det_backend}]", out / "detection_vs_eps.png")
    return [ReportFigure(reid, f"{privacy.label} of the strongest attack against the privacy budget ε (log axis); "
                               "dashed lines and shaded bands: methods without ε and their 95 % intervals.", "other"),
            ReportFigure(det, f"{detection.label} ({det_backend}) against ε, as above ({direction(detection)}).",
                         "other")]


def figures(df: pd.DataFrame, spec: ReportSpec, out: Path) -> list[ReportFigure]:
    """Every figure of the report with its caption, in the page's order."""

    made = _frontier_entries(df, spec, out)
    if "attacker" in df and (df.attacker.astype(str) != "").any():
        made.append(ReportFigure(attacker_figure(df, spec, out), f"{metric_registry.headline('privacy').label} by attacker "
                                 "(each attacker's strongest recognizer) for every method and ε, with 95 % intervals; "
                                 "a hatched bar is an attacker that failed its sanity check, never counted as privacy.",
                                 "attacker", 1100))
    utility = privacy_utility_figure(df, spec, out)
    if utility:
        made.append(ReportFigure(utility, "The strongest attack's re-identification against every utility metric "
                                 "measured, one panel each, one point per method and ε (95 % intervals).", "other",
                                 1100))
    made += _eps_entries(df, spec, out)
    quality = quality_figure(df, spec, out)
    if quality:  # the frontier's first panel under its old name: shown only when there is no frontier
        shown = not any(f.section == "frontier" for f in made)
        made.append(ReportFigure(quality, "FID against the strongest attack, every data set in one panel.",
                                 "other" if shown else "extra"))
    return made


def _and(items) -> str:
    items = [str(i) for i in items]
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


def _dataset_words(sel: pd.DataFrame, ds: str, provs: list[dict]) -> str:
    """``lfw (devtest split; 300 images; re-identification over 203 probes ...)``."""

    specs = metric_registry.all_metrics()
    d = sel[sel.dataset == ds]
    privacy = d.metric.map(lambda m: specs[m].privacy if m in specs else False).astype(bool)
    images = pd.to_numeric(d[~privacy & d.metric.map(lambda m: m in specs and specs[m].in_tables)].n).max()
    h = headline_rows(d)
    probes = pd.to_numeric(h[(h.metric == metric_registry.headline("privacy").name) & (h.backend == STRONGEST)].n).max()
    split = next((x.get("split") for p in provs for x in (p.get("datasets") or [])
                  if isinstance(x, dict) and x.get("name") == ds and x.get("split")), None)
    parts = [f"{split} split"] if split else []
    parts += [f"{int(images)} images"] if not math.isnan(images) else []
    parts += [f"re-identification over {int(probes)} probes, the photos of people with at least two"] \
        if not math.isnan(probes) else []
    return f"{ds} ({'; '.join(parts)})" if parts else ds


def _attackers_present(sel: pd.DataFrame) -> list[str]:
    present = [a for a in dict.fromkeys(sel.attacker.astype(str)) if a not in ("", STRONGEST)]
    rank = {a: i for i, a in enumerate(attacker_registry.available())}
    return sorted(present, key=lambda a: (rank.get(a, len(rank)), a))


def _rows_without_some_attacker(sel: pd.DataFrame, attackers: list[str]) -> bool:
    """Whether a row's run ran fewer of ``attackers`` than the page names (a run aggregated before
    an attacker existed, or one that ran on some cells only, as ``semi-finetune``)."""
    r = sel[(sel.metric == "reid_rank1") & (sel.backend == STRONGEST) & sel.attacker.isin(attackers)]
    if r.empty:
        return False
    ran = r.groupby(["dataset", "method", "eps", "seed"]).attacker.nunique()
    return bool((ran < len(set(r.attacker))).any())


def overview(df: pd.DataFrame, spec: ReportSpec, t: pd.DataFrame, provs: list[dict], run_dirs) -> str:
    """The "what this page shows" paragraph (HTML), from the selected results and the runs."""

    sel = select(df, spec)
    specs = metric_registry.all_metrics()
    methods = list(dict.fromkeys(t.method)) if len(t) else []
    eps = sorted({float(e) for e in sel.eps if e not in ("", "nan")})
    attackers = _attackers_present(sel)
    utility = list(dict.fromkeys(specs[m].label for m, _, _ in table_columns(headline_rows(sel), spec)
                                 if m in specs and not specs[m].privacy))
    text = (f"This page compares {len(methods)} method{'s' * (len(methods) != 1)} ({_and(methods)}) on "
            f"{_and(_dataset_words(sel, ds, provs) for ds in dict.fromkeys(sel.dataset))}")
    text += (f" at privacy budgets ε = {_and(eps_text(e) for e in eps)} for the methods that have one. "
             if eps else ". ")
    privacy = metric_registry.headline("privacy")
    text += (f"Privacy is {privacy.label} ({direction(privacy)})" +
             (f" by the attackers {_and(attackers)}; each row's headline is the strongest valid attack. " if attackers
              else ". "))
    if _rows_without_some_attacker(sel, attackers):
        text += ("Not every row was measured against every one of them: an attacker a row's run did not run reads – "
                 "in its column, and that row's headline is the strongest of the attackers it ran. ")
    text += f"Utility: {_and(utility)}. " if utility else ""
    seeds = sorted({str(x) for x in sel.seed}) if "seed" in sel else []
    text += (f"Values are means over seed{'s' * (len(seeds) != 1)} {_and(seeds)} with their 95 % intervals. "
             if seeds else "")
    text += "Definitions are in the glossary, what produced the numbers under provenance, at the end of the page."
    runs = ", ".join(html.escape(str(r)) for r in run_dirs)
    return f"<p class='lead'>{html.escape(text)}</p><p>Runs: {runs}</p>"


TABLE_NOTE = ("Each value with its 95 % interval in brackets. n: the number of probes (re-identification) or "
              "images the row's first value was computed on; every value's own n is in metrics.csv.")
STYLE = ("body{font-family:sans-serif;max-width:1150px;margin:auto;padding:0 1em;line-height:1.4}"
         "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;"
         "vertical-align:top}td{white-space:nowrap}.wide{overflow-x:auto}figure{margin:1.5em 0}figcaption{font-size:14px;color:#333;"
         "max-width:900px}img{max-width:100%;height:auto}.lead{font-size:16px}.prov th{text-align:left;"
         "white-space:nowrap}")


def _figure_html(f: ReportFigure) -> str:
    return (f'<figure><img src="{html.escape(f.path.name)}" width="{f.width}" alt="{html.escape(f.caption)}">'
            f"<figcaption>{html.escape(f.caption)}</figcaption></figure>")


def _figure_sections(figs: list[ReportFigure], sections=("frontier", "attacker", "other")) -> list[str]:
    titles = {"frontier": "Privacy–utility frontier", "attacker": "Re-identification by attacker",
              "other": "Other figures"}
    body = []
    for section, title in ((k, titles[k]) for k in sections):
        shown = [f for f in figs if f.section == section]
        if shown:
            body.append(f"<h2>{title}</h2>" + "".join(_figure_html(f) for f in shown))
    return body


def _samples_html(grid: Path | None, source: Path | None = None) -> list[str]:
    if not grid:
        return []
    caption = ("Faces of the first run under each method and ε: the very images it measured, re-drawn with the "
               "run's seeds (a red frame marks a tile that differs from what the run stored).")
    if source is not None:
        caption = (f"Faces under each method and ε, drawn from the store of run {html.escape(Path(source).name)}: a "
                   "short run over the split's first images, which the runs in the table also measured, with the same "
                   "per-image seeds, so the same pixels for the same code and weights; a red frame marks a tile that "
                   "differs from what that store recorded.")
    return [f'<h2>Samples</h2><figure><img src="{grid.name}" alt="sample faces"><figcaption>{caption}'
            "</figcaption></figure>"]


def _files_html(figs: list[ReportFigure]) -> str:
    files = ["table.md", "table.csv", "table.tex", "glossary.md", "provenance.json"]
    files += [f.path.name for f in figs if f.section == "extra"]
    return "<p>Files: " + ", ".join(f'<a href="{n}">{n}</a>' for n in files) + "</p>"


def write_report(run_dirs: list[Path], out: Path, spec: ReportSpec | None = None, samples: bool = True,
                 samples_from: Path | None = None) -> Path:
    """Tables, figures, glossary, provenance and ``index.html`` (in reading order: what the page
    shows, the frontier, the table, re-identification by attacker, other figures, samples,
    glossary, provenance). ``samples_from``: the run whose store the sample grid draws from (default:
    the first of ``run_dirs``); see :func:`sample_grid`."""

    spec = spec or ReportSpec()
    out.mkdir(parents=True, exist_ok=True)
    stored = load_runs(run_dirs)
    stored_spec = spec
    df, spec = spec.relabelled(stored)  # what readers see; samples are read from the stores by spec
    provs = [provenance.read(Path(r)) for r in run_dirs]  # before writing: out may hold the saved record
    ti = table(df, spec, intervals=True)
    csv = table(df, spec, intervals="columns")
    if stored_spec.method_labels:  # programs reading the CSV get the spec each label stands for
        specs = {stored_spec.label(m): m for m in dict.fromkeys(stored.method)}
        csv.insert(1, "method spec", csv["method"].map(specs))
    csv.to_csv(out / "table.csv", index=False)
    readable = ti.rename(columns=glossary.READER_HEADS)  # for readers; table.csv keeps "eps" for programs
    (out / "table.md").write_text(f"# {spec.title}\n\n{TABLE_NOTE}\n\n" + to_markdown(readable))
    (out / "table.tex").write_text(to_latex(readable, f"{spec.title}. {TABLE_NOTE}"))
    entries = glossary.table_entries(glossary_columns(ti, headline_rows(select(df, spec)), spec))
    attackers = glossary.attacker_entries()
    (out / "glossary.md").write_text(glossary.to_markdown(entries, attackers))
    version = provenance.code_version()
    provenance.write(out, provs, version)
    figs = figures(df, spec, out)
    measured = set(zip(stored["method"], stored["eps"]))
    grid = sample_grid(run_dirs, stored_spec, out, source=samples_from, cells=measured) if samples else None
    # the frontier first: it is the answer at a glance; the wide table with every interval follows
    body = [f"<h1>{html.escape(spec.title)}</h1>", overview(df, spec, ti, provs, run_dirs),
            *_figure_sections(figs, ("frontier",)),
            f"<h2>Results</h2><p>{html.escape(TABLE_NOTE)} Column definitions: <a href='#glossary'>glossary</a>.</p>",
            "<div class='wide'>" + readable.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="–", border=0)
            + "</div>"]
    body += _figure_sections(figs, ("attacker", "other")) + _samples_html(grid, samples_from)
    body += [glossary.to_html(entries, attackers), provenance.to_html(provs, version), _files_html(figs)]
    (out / "index.html").write_text("<!doctype html><meta charset='utf-8'><title>" + html.escape(spec.title) +
                                    f"</title><style>{STYLE}</style>\n" + "\n".join(body) + "\n")
    return out / "index.html"
