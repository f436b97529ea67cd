"""``bench report``: paper tables (Markdown, CSV, LaTeX), figures, a sample grid and one
``index.html``, from one or more run directories. A report spec (``reports/<name>.toml``) fixes
which data set, methods, ε and metrics a table shows."""
from __future__ import annotations

import html
import math
import sqlite3
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .export import headline_rows, strongest_attacker, with_attacker_columns
from .figures import cell_label
from .store import ROW_KEY


@dataclass
class ReportSpec:
    title: str = "kpdp-bench report"
    dataset: str | None = None
    methods: list[str] | None = None
    eps: list[float] | None = None
    metrics: list[tuple] | None = None  # (metric, backend[, attacker]); None: the summary's columns
    runs: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> "ReportSpec":
        from .registry import canonical

        d = tomllib.loads(Path(path).read_text())
        metrics = [_metric_column(m) for m in d.get("metrics", [])]
        methods = [canonical(m) for m in d["methods"]] if d.get("methods") else None  # as runs store them
        return cls(title=d.get("title", cls.title), dataset=d.get("dataset"), methods=methods,
                   eps=d.get("eps"), metrics=metrics or None, runs=d.get("runs", []))


def _metric_column(text: str) -> tuple[str, str, str | None]:
    """``metric[@backend[/attacker]]`` -> (metric, backend, attacker or None = the headline rows).

    Example:
        >>> _metric_column("reid_rank1@max/lazy"), _metric_column("fid@inception-2015-12-05")
        (('reid_rank1', 'max', 'lazy'), ('fid', 'inception-2015-12-05', None))
    """
    metric, _, rest = text.partition("@")
    backend, _, attacker = rest.partition("/")
    return metric, backend, attacker or None


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
    return "–" if e in ("", "nan") else f"{float(e):g}"


def select(df: pd.DataFrame, spec: ReportSpec) -> pd.DataFrame:
    d = df
    if spec.dataset:
        d = d[d.dataset == spec.dataset]
    if spec.methods:
        d = d[d.method.isin(spec.methods)]
    if spec.eps:
        keep = {"" , *[repr(float(e)) for e in spec.eps]}
        d = d[d.eps.isin(keep)]
    return d


def table(df: pd.DataFrame, spec: ReportSpec, intervals: bool = False) -> pd.DataFrame:
    """Rows: method (ε); columns: metrics, then ``n`` (the smallest over the row's values). Seeds
    are averaged. With ``intervals`` each value is a string ``value [ci_low, ci_high]``."""
    from .export import column_name, format_value, summary_columns

    every = select(df, spec)
    winners = strongest_attacker(every)
    d = headline_rows(every)
    from .metrics import registry

    specs = registry.all_metrics()
    privacy = registry.headline("privacy").name
    metrics = [(m[0], m[1], m[2] if len(m) > 2 else None) for m in spec.metrics] if spec.metrics else \
        [(m, b, None) for m, b in summary_columns(d) if specs[m].in_tables]
    rows = []
    methods = spec.methods or list(dict.fromkeys(d.method))
    for m in methods:
        dm = d[d.method == m]
        for e in sorted(set(dm.eps), key=lambda x: -1 if x == "" else float(x)):
            de = dm[dm.eps == e]
            de_all = every[(every.method == m) & (every.eps == e)]
            row = {"method": m, "eps": _eps_label(e)}
            ns = []
            for metric, backend, attacker in metrics:
                if attacker is None and specs.get(metric) is not None and specs[metric].privacy and backend != "max":
                    attacker = "ignorant"  # one recognizer's privacy number: the attacker it always meant
                if attacker is None:
                    v = de[(de.metric == metric) & (de.backend == backend)]
                else:
                    v = de_all[(de_all.metric == metric) & (de_all.backend == backend)
                               & (de_all.attacker.astype(str).isin([attacker, ""] if attacker == "ignorant" else
                                                                   [attacker]))]
                value = v.value.astype(float).mean() if len(v) else float("nan")
                if len(v):
                    ns.append(int(pd.to_numeric(v.n).min()))
                if intervals:
                    lo = pd.to_numeric(v.get("ci_low", pd.Series(dtype=float)), errors="coerce").min()
                    hi = pd.to_numeric(v.get("ci_high", pd.Series(dtype=float)), errors="coerce").max()
                    value = format_value(value, lo, hi)
                row[column_name(metric, backend) + (f" ({attacker})" if attacker else "")] = value
                if metric == privacy and backend == "max" and attacker is None and len(winners):
                    row["attacker"] = winners.get((de.dataset.iloc[0], m, e), "") if len(de) else ""
            row["n"] = ns[0] if ns else 0  # the first column's: probes when it is re-identification
            rows.append(row)
    return pd.DataFrame(rows)


def to_latex(t: pd.DataFrame, caption: str) -> str:
    cols = list(t.columns)
    esc = lambda s: str(s).replace("_", r"\_").replace("@", r"@").replace("–", "--")  # noqa: E731
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


def figures(df: pd.DataFrame, spec: ReportSpec, out: Path) -> list[Path]:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .metrics import registry

    from .figures import attacker_figure, privacy_utility_figure  # noqa: I001

    paths = [attacker_figure(df, spec, out)] if "attacker" in df and (df.attacker.astype(str) != "").any() else []
    utility = privacy_utility_figure(df, spec, out)
    paths += [utility] if utility else []
    d = headline_rows(select(df, spec))
    privacy, detection, quality = (registry.headline(r) for r in ("privacy", "detection", "quality"))
    det_backend = registry.default_backend(detection, list(dict.fromkeys(d[d.metric == detection.name].backend)))
    for m_spec, backend, ylabel, fname in [
            (privacy, "max", f"{privacy.label} (strongest attack)", "reid_vs_eps.png"),
            (detection, det_backend, f"{detection.label} [{det_backend}]", "detection_vs_eps.png")]:
        metric = m_spec.name
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        sel = d[(d.metric == metric) & (d.backend == backend)]
        eps_vals = sorted({float(e) for e in sel.eps if e not in ("", "inf")}) or [1.0]
        for k, m in enumerate(dict.fromkeys(sel.method)):
            sm = sel[sel.method == m]
            if (sm.eps == "").all():  # methods without ε: a reference line and its interval as a band
                ax.axhline(sm.value.astype(float).mean(), ls="--", lw=1, color=f"C{k}", label=m)
                if sm.ci_low.notna().all():
                    ax.axhspan(sm.ci_low.min(), sm.ci_high.max(), color=f"C{k}", alpha=0.08, lw=0)
            else:
                sm = sm[sm.eps != ""].assign(e=lambda x: x.eps.astype(float)).groupby("e").agg(
                    value=("value", "mean"), lo=("ci_low", "min"), hi=("ci_high", "max"))
                yerr = np.vstack([(sm.value - sm.lo).clip(lower=0), (sm.hi - sm.value).clip(lower=0)])
                ax.errorbar(sm.index, sm.value, yerr=None if np.isnan(yerr).all() else np.nan_to_num(yerr),
                            fmt="o-", color=f"C{k}", label=m, capsize=2)
        ax.set_xscale("log")
        ax.set_xticks(eps_vals, [f"{e:g}" for e in eps_vals])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("privacy budget ε (per face)"), ax.set_ylabel(ylabel)
        if m_spec.rate:
            ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7, ncol=2), ax.grid(alpha=0.3)
        fig.tight_layout(), fig.savefig(out / fname, dpi=150), plt.close(fig)
        paths.append(out / fname)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    piv = d[((d.metric == privacy.name) & (d.backend == "max")) | (d.metric == quality.name)]
    q, p = quality.name, privacy.name
    for (m, e), g in piv.groupby(["method", "eps"], sort=False):
        vals = dict(zip(g.metric, g.value.astype(float)))
        if q in vals and p in vals:
            ci = {r.metric: (r.ci_low, r.ci_high) for r in g.itertuples()}
            err = lambda k: None if any(np.isnan(ci[k])) else [[max(0, vals[k] - ci[k][0])], [max(0, ci[k][1] - vals[k])]]  # noqa: E731
            ax.errorbar(vals[q], vals[p], xerr=err(q), yerr=err(p), fmt="o", capsize=2,
                        color=f"C{list(dict.fromkeys(piv.method)).index(m)}")
            ax.annotate(m + (f" ε={float(e):g}" if e else ""), (vals[q], vals[p]), fontsize=6)
    ax.set_xlabel(f"{quality.label} (lower = more natural)"), ax.set_ylabel(f"{privacy.label} (max)")
    ax.grid(alpha=0.3), fig.tight_layout(), fig.savefig(out / "fid_vs_reid.png", dpi=150), plt.close(fig)
    paths.append(out / "fid_vs_reid.png")
    return paths


def measured_samples(run_dir: Path, spec: ReportSpec | None = None, n_faces: int = 4):
    """Yields ``(image_id, (method, eps), original, anonymised, stored_digest)`` for a few images of
    a run: each method re-run with the run's own per-image seed, so that the picture is exactly the
    image that was measured (``stored_digest`` is what the run recorded; callers compare)."""
    import json

    from kpdp.datasets import load_image

    from . import registry
    from .analysis import face_from_json
    from .seeds import derive_seed

    store = Path(run_dir) / "results.sqlite"
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)  # read-only: a report never writes into a run
    meta = dict(db.execute("SELECT key, value FROM run"))
    seed = json.loads(meta.get("seeds", "[0]"))[0]
    executor = json.loads(meta.get("executor", "{}")).get("name")
    if executor in ("processes", "ray"):
        # pool workers run torch on one thread; convolutions summed in another order round
        # differently, and a generator's pixels would differ by a level here and there
        import torch

        torch.set_num_threads(1)
    cells = db.execute("SELECT DISTINCT dataset, method, eps FROM images WHERE status='ok' AND seed=? "
                       "ORDER BY method, eps", (seed,)).fetchall()
    cells = [c for c in cells if c[1] != "original" and (spec is None or not spec.methods or c[1] in spec.methods)]
    rows = db.execute("SELECT dataset, image_id, path, record FROM originals ORDER BY image_id").fetchall()
    picks = rows[:: max(1, len(rows) // n_faces)][:n_faces]
    methods = {}
    for dataset, image_id, path, rec in picks:
        rec = json.loads(rec)
        image = load_image(path)
        faces = [face_from_json(f) for f in rec["faces"]]
        for ds_name, m, e in cells:
            if ds_name != dataset:
                continue
            row = db.execute("SELECT record FROM images WHERE dataset=? AND method=? AND eps=? AND seed=? AND "
                             "image_id=? AND status='ok'", (dataset, m, e, seed, image_id)).fetchone()
            if row is None:
                continue
            eps = float(e) if e else None
            if (m, eps) not in methods:
                methods[(m, eps)] = registry.create(m, eps)
            res = methods[(m, eps)].anonymize(image, faces, seed=derive_seed(seed, dataset, m, eps, image_id)).image
            yield image_id, (m, e), image, faces[rec["primary"]], res, json.loads(row[0]).get("digest")
    db.close()


def sample_grid(run_dirs: list[Path], spec: ReportSpec, out: Path, n_faces: int = 4) -> Path | None:
    """Faces x (original, each method and ε) of the first run: the very images it measured (each
    tile is checked against the digest the run stored; a mismatch is framed in red and reported)."""
    from PIL import Image

    from .analysis import image_digest

    store = Path(run_dirs[0]) / "results.sqlite"
    if not store.is_file():  # a committed run keeps only metrics.csv and summary.md
        print(f"note: no sample grid: {store} is not there (the grid re-runs methods on the run's originals)")
        return None
    by_image: dict[str, list] = {}
    labels: list[str] = []
    mismatches = []
    for image_id, (m, e), image, face, res, digest in measured_samples(run_dirs[0], spec, n_faces):
        crop = _crop_box(face.box, image.shape)
        row = by_image.setdefault(image_id, [_tile(image, crop)])
        tile = _tile(res, crop)
        if digest is not None and image_digest(res) != digest:
            mismatches.append((image_id, m, e))
            tile = tile.copy()
            tile[:3], tile[-3:], tile[:, :3], tile[:, -3:] = (255, 0, 0), (255, 0, 0), (255, 0, 0), (255, 0, 0)
        row.append(tile)
        label = cell_label(m, e)
        if label not in labels:
            labels.append(label)
    rows = [r for r in by_image.values() if len(r) == len(labels) + 1]
    if not rows:
        return None
    if mismatches:
        print(f"warning: {len(mismatches)} sample tiles differ from what the run measured: {mismatches[:3]}")
    path = out / "samples.png"
    Image.fromarray(_with_header(np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0),
                                 ["original"] + labels)).save(path)
    return path


def _crop_box(box, shape, margin=0.6):
    x0, y0, x1, y1 = box
    s = max(x1 - x0, y1 - y0) * (1 + margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return [int(max(0, cx - s / 2)), int(max(0, cy - s / 2)), int(min(shape[1], cx + s / 2)),
            int(min(shape[0], cy + s / 2))]


def _tile(image, crop, size=128):
    from PIL import Image

    x0, y0, x1, y1 = crop
    return np.asarray(Image.fromarray(image[y0:y1, x0:x1]).resize((size, size), Image.BICUBIC))


def _with_header(grid, labels, tile=128):
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (grid.shape[1], grid.shape[0] + 18), "white")
    canvas.paste(Image.fromarray(grid), (0, 18))
    draw = ImageDraw.Draw(canvas)
    for k, label in enumerate(labels):
        draw.text((k * tile + 3, 3), label, fill="black")
    return np.asarray(canvas)


def write_report(run_dirs: list[Path], out: Path, spec: ReportSpec | None = None, samples: bool = True) -> Path:
    spec = spec or ReportSpec()
    out.mkdir(parents=True, exist_ok=True)
    df = load_runs(run_dirs)
    t = table(df, spec)
    ti = table(df, spec, intervals=True)
    t.to_csv(out / "table.csv", index=False)
    ci_note = ("Each value with its 95 % interval; n: what the first column was computed on (probes, for "
               "re-identification; metrics.csv has each value's n).\n\n")
    (out / "table.md").write_text(f"# {spec.title}\n\n" + ci_note + to_markdown(ti))
    (out / "table.tex").write_text(to_latex(ti, spec.title + " (95 % intervals in brackets)"))
    figs = figures(df, spec, out)
    grid = sample_grid(run_dirs, spec, out) if samples else None
    body = [f"<h1>{html.escape(spec.title)}</h1>", f"<p>Runs: {', '.join(html.escape(str(r)) for r in run_dirs)}</p>",
            ti.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="–")]
    body += [f'<figure><img src="{p.name}" width="520"><figcaption>{p.stem}</figcaption></figure>' for p in figs]
    if grid:
        body.append(f'<h2>Samples</h2><img src="{grid.name}">')
    body.append('<p>Files: <a href="table.md">table.md</a>, <a href="table.csv">table.csv</a>, '
                '<a href="table.tex">table.tex</a></p>')
    (out / "index.html").write_text("<!doctype html><meta charset='utf-8'><title>" + html.escape(spec.title) +
                                    "</title><style>body{font-family:sans-serif;max-width:1200px;margin:auto}"
                                    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px}"
                                    "</style>" + "\n".join(body))
    return out / "index.html"


def contact_sheet(dataset, indices: list[int], cells: list[tuple[str, float | None]], out: Path, seed: int = 0,
                  device: str = "cpu") -> Path:
    """Faces (rows) under each (method, ε) (columns), for a person to look at. Faces are found on
    the originals as in `bench run`; every method gets the same faces and per-image seed."""
    from PIL import Image

    from kpdp.datasets import load_image
    from kpdp.faces.analyze import FaceFinder, primary_index

    from . import registry
    from .seeds import derive_seed

    finder = FaceFinder(device=device)
    methods = {c: registry.create(c[0], c[1], device) for c in cells}
    rows = []
    for i in indices:
        s = dataset[i]
        image = load_image(s.path)
        faces = finder.all_faces(image)
        if not faces:
            continue
        crop = _crop_box(faces[primary_index(faces, image.shape)].box, image.shape)
        row = [_tile(image, crop)]
        for (m, e), meth in methods.items():
            res = meth.anonymize(image, faces, seed=derive_seed(seed, dataset.name, m, e, s.image_id)).image
            row.append(_tile(res, crop))
        rows.append(np.concatenate(row, axis=1))
    labels = ["original"] + [cell_label(m, e) for m, e in cells]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_with_header(np.concatenate(rows, axis=0), labels)).save(out)
    return Path(out)
