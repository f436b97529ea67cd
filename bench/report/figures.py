"""The report's figures: the privacy–utility frontier per data set (strongest attack against FID,
expression agreement and detection, labels placed so that none overlaps), re-identification by
attacker, the strongest attack against every utility metric, and the per-ε curves."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.attackers import available
from bench.metrics import registry
from bench.metrics.registry import STRONGEST
from bench.report.export import headline_rows
from bench.report.glossary import direction
from bench.report.spec import select

#: utility metrics of the privacy_vs_utility figure, each with the backend shown (None: the first present)
UTILITY = (("detection_rate", "mtcnn"), ("fid", None), ("expression_agreement", None),
           ("attribute_agreement", "mean"), ("pose_error", "mean"), ("identity_diversity", None))
#: the frontier's panels (x axes), in order; y: the strongest attack's headline privacy metric
FRONTIER = (("fid", None), ("expression_agreement", None), ("detection_rate", "mtcnn"))
DPI = 150
#: label candidates around a point: E, NE, N, NW, W, SW, S, SE (unit steps)
DIRECTIONS = ((1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1))
_HA = {1: "left", 0: "center", -1: "right"}
_VA = {1: "bottom", 0: "center", -1: "top"}


def cell_label(method: str, eps, greek: bool = False) -> str:
    """``kpdp, eps 1`` (``greek``: ``kpdp, ε = 1``, ``ε = ∞`` for inf, for fonts that have ε, such as
    matplotlib's DejaVu Sans; PIL's default bitmap font has none); ``eps`` None or '' for methods without ε.

    Example:
        >>> cell_label("kpdp", "inf"), cell_label("kpdp", "inf", greek=True), cell_label("blur", "")
        ('kpdp, eps inf', 'kpdp, ε = ∞', 'blur')
    """
    if eps in (None, "", "nan"):
        return method
    e = float(eps)
    if not greek:
        return f"{method}, eps {e:g}"
    return f"{method}, ε = {'∞' if np.isinf(e) else f'{e:g}'}"


def method_colour(k: int, n: int):
    """The colour of the ``k``-th of ``n`` methods: matplotlib's 10 default colours, or, past 10
    (a report of checkpoints), the 20 of ``tab20``, so that two methods share one only past 20.

    Example:
        >>> method_colour(3, 5), method_colour(0, 12) == method_colour(10, 12)
        ('C3', False)
    """
    if n <= 10:
        return f"C{k % 10}"
    from matplotlib import colormaps

    return colormaps["tab20"](k % 20)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def attacker_figure(df: pd.DataFrame, spec, out: Path) -> Path:
    """Grouped bars: the headline privacy metric (each attacker's strongest recognizer) per method
    (ε) and attacker, with intervals; an attacker that failed its sanity check is hatched."""
    plt = _plt()

    privacy = registry.headline("privacy")
    d = select(df, spec)
    d = d[(d.metric == privacy.name) & (d.backend == STRONGEST) & (d.attacker.astype(str) != "")
          & (d.attacker != STRONGEST)]

    ladder = {a: i for i, a in enumerate(available())}  # weakest to strongest knowledge, left to right
    attackers = sorted(dict.fromkeys(d.attacker), key=lambda a: ladder.get(a, len(ladder)))
    cells = sorted(dict.fromkeys(zip(d.method, d.eps)), key=lambda c: _order(c, spec))
    fig, ax = plt.subplots(figsize=(max(5.5, 0.55 * len(cells) * max(1, len(attackers)) / 1.5), 3.8))
    width = 0.8 / max(1, len(attackers))
    for k, a in enumerate(attackers):
        da = d[d.attacker == a]
        for i, (m, e) in enumerate(cells):
            g = da[(da.method == m) & (da.eps == e)]
            if g.empty:
                continue
            v, lo, hi = g.value.mean(), g.ci_low.min(), g.ci_high.max()
            err = None if np.isnan([lo, hi]).any() else [[max(0, v - lo)], [max(0, hi - v)]]
            ax.bar(i + (k - (len(attackers) - 1) / 2) * width, v, width, yerr=err, capsize=2, color=f"C{k}",
                   hatch="//" if (g.valid == 0).any() else None, label=a if i == 0 or g.index[0] == da.index[0] else None)
    ax.set_xticks(range(len(cells)), [cell_label(m, e if e else None, greek=True) for m, e in cells], rotation=30,
                  ha="right", fontsize=8)
    ax.set_ylabel(f"{privacy.label} (max over recognizers)"), ax.set_ylim(0, 1.02)
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), title="attacker", fontsize=7), ax.grid(alpha=0.3, axis="y")
    fig.tight_layout(), fig.savefig(out / "reid_by_attacker.png", dpi=150), plt.close(fig)
    return out / "reid_by_attacker.png"


def privacy_utility_figure(df: pd.DataFrame, spec, out: Path) -> Path | None:
    """One panel per utility metric present: x = the metric (error bars), y = the strongest valid
    attack's re-identification (error bars), one point per method (ε)."""
    d = headline_rows(select(df, spec))
    privacy = registry.headline("privacy")
    specs = registry.all_metrics()
    panels = []
    for name, backend in UTILITY:
        sel = d[d.metric == name]
        if sel.empty:
            continue
        b = backend if backend in set(sel.backend) else sel.backend.iloc[0]
        panels.append((name, b, sel[sel.backend == b]))
    y = d[(d.metric == privacy.name) & (d.backend == STRONGEST)]
    if not panels or y.empty:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), sharey=True, squeeze=False)
    cells = sorted(dict.fromkeys(zip(y.method, y.eps)), key=lambda c: _order(c, spec))
    for ax, (name, b, sel) in zip(axes[0], panels):
        for k, (m, e) in enumerate(cells):
            px, py = sel[(sel.method == m) & (sel.eps == e)], y[(y.method == m) & (y.eps == e)]
            if px.empty or py.empty:
                continue
            vx, vy = px.value.mean(), py.value.mean()
            ex = _err(vx, px.ci_low.min(), px.ci_high.max())
            ey = _err(vy, py.ci_low.min(), py.ci_high.max())
            ax.errorbar(vx, vy, xerr=ex, yerr=ey, fmt="o", ms=4, capsize=2, color=method_colour(k, len(cells)),
                        label=cell_label(m, e, greek=True))
        spec_ = specs.get(name)
        better = "" if spec_ is None or spec_.higher_is_better is None else (
            " (higher = better)" if spec_.higher_is_better else " (lower = better)")
        ax.set_xlabel(f"{spec_.label if spec_ else name}" + (f" [{b}]" if b else "") + better, fontsize=7)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{privacy.label}\n(strongest attack; lower = more private)", fontsize=7)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(6, max(1, len(labels))), fontsize=7,
               bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(out / "privacy_vs_utility.png", dpi=150), plt.close(fig)
    return out / "privacy_vs_utility.png"


def _order(cell, spec) -> tuple:
    """The spec's method order (else alphabetical), ε ascending, methods without ε first."""
    method, eps = cell
    rank = spec.methods.index(method) if spec.methods and method in spec.methods else len(spec.methods or [])
    return rank, method, -1.0 if eps in ("", None) else float(eps)


def _err(v, lo, hi):
    return None if np.isnan([lo, hi]).any() else [[max(0, v - lo)], [max(0, hi - v)]]


# -- label placement ---------------------------------------------------------------------------

def _overlap(a, b) -> float:
    """Area shared by two display-space boxes (0 when they only touch)."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _outside(box, frame) -> float:
    """Area of ``box`` outside ``frame``."""
    return box.width * box.height - _overlap(box, frame)


def _centre(box) -> tuple[float, float]:
    return (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2


def _crosses(a, b) -> bool:
    """Whether segments ``a`` and ``b`` ((x, y), (x, y)) properly cross (sharing an end does not count).

    Example:
        >>> _crosses(((0, 0), (2, 2)), ((0, 2), (2, 0))), _crosses(((0, 0), (1, 1)), ((1, 1), (2, 0)))
        (True, False)
    """
    def side(p, q, r):
        return np.sign((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]))

    (p1, p2), (q1, q2) = a, b
    return bool(side(p1, p2, q1) * side(p1, p2, q2) < 0 and side(q1, q2, p1) * side(q1, q2, p2) < 0)


def _candidates(rings: int, gap: float, step: float):
    """(ring, dx, dy, ha, va) in points: 8 directions on rings of growing radius, nearest first."""
    for ring in range(1, rings + 1):
        r = gap + (ring - 1) * step
        for ux, uy in DIRECTIONS:
            yield ring, ux * r, uy * r, _HA[ux], _VA[uy]


class _Obstacles:
    """What a label must not cover (display coordinates): labels placed so far and point markers
    (hard), the axes' outside (hard), segments such as error bars and lines (soft)."""

    def __init__(self, ax, points: np.ndarray, segments, marker_pt: float = 3.0):
        from matplotlib.path import Path as MPath
        from matplotlib.transforms import Bbox

        r = marker_pt * ax.figure.dpi / 72
        self.frame = ax.get_window_extent()
        self.markers = [Bbox.from_bounds(x - r, y - r, 2 * r, 2 * r) for x, y in points]
        self.paths = [MPath(np.asarray(seg)) for seg in segments]
        self.placed: list = []
        self.leaders: list = []  # (point, label centre) of the leader lines drawn so far
        self.leader_paths: list = []  # the same as paths, for the boxes they may touch

    def cost(self, box, point, ring: int) -> tuple[float, float]:
        """(hard: area overlapped, soft: the ring plus 1.5 per segment or leader line the box
        touches, and per label or leader line its own leader line crosses)."""
        from matplotlib.path import Path as MPath

        hard = sum(_overlap(box, b) for b in self.placed + self.markers) + _outside(box, self.frame)
        soft = sum(p.intersects_bbox(box, filled=False) for p in self.paths)
        soft += sum(p.intersects_bbox(box, filled=False) for p in self.leader_paths)
        if ring > 1:  # the leader line from the point to the label
            end = _centre(box)
            lead = MPath(np.array([point, end]))
            soft += sum(lead.intersects_bbox(b, filled=False) for b in self.placed)
            # crossed leader lines are what makes a crowded cluster unreadable (which label is whose)
            soft += sum(_crosses((point, end), seg) for seg in self.leaders)
        return hard, ring + 1.5 * soft

    def add(self, box, point, ring: int) -> None:
        from matplotlib.path import Path as MPath

        self.placed.append(box)
        if ring > 1:
            self.leaders.append((tuple(point), _centre(box)))
            self.leader_paths.append(MPath(np.array(self.leaders[-1])))


def _best_position(ann, point, obstacles: _Obstacles, renderer, rings: int, fontsize: float, pad: float):
    """(ring, dx, dy, ha, va, box) of the cheapest candidate; the first of equal ones."""
    best = None
    for k, (ring, dx, dy, ha, va) in enumerate(_candidates(rings, 3.0, 1.15 * fontsize)):
        ann.xyann = (dx, dy)
        ann.set_ha(ha), ann.set_va(va)
        box = ann.get_window_extent(renderer).padded(pad)
        key = (*obstacles.cost(box, point, ring), k)
        if best is None or key < best[0]:
            best = (key, (ring, dx, dy, ha, va, box))
    return best[1]


def place_labels(ax, xs, ys, texts, colors=None, fontsize: float = 8, rings: int = 7, pad: float = 2.0,
                 segments=()) -> list:
    """Annotate point i of ``(xs, ys)`` (data coordinates) with ``texts[i]``, greedily in order:
    each label takes the nearest of 8 positions around its point (on rings of growing radius)
    whose text box, measured by the renderer, overlaps no label placed before and no point marker
    and stays inside the axes; touching a segment (error bar, line; display coordinates) or a
    leader line, and a leader line crossing a placed label or leader line, costs one ring and a half. A label past the first ring
    gets a thin leader line. Deterministic. Call it once the axes' limits and layout are final.
    Returns the annotations (``gid`` ``point-label``)."""
    renderer = ax.figure.canvas.get_renderer()
    points = ax.transData.transform(np.column_stack([xs, ys]))
    obstacles = _Obstacles(ax, points, segments)
    out = []
    for i, text in enumerate(texts):
        color = colors[i] if colors else "black"
        common = dict(textcoords="offset points", fontsize=fontsize, color=color, annotation_clip=False,
                      gid="point-label")
        probe = ax.annotate(text, (xs[i], ys[i]), xytext=(0, 0), **common)
        ring, dx, dy, ha, va, box = _best_position(probe, points[i], obstacles, renderer, rings, fontsize, pad)
        probe.remove()
        leader = dict(arrowstyle="-", color=color, lw=0.5, alpha=0.6, shrinkA=0, shrinkB=3) if ring > 1 else None
        out.append(ax.annotate(text, (xs[i], ys[i]), xytext=(dx, dy), ha=ha, va=va, arrowprops=leader, **common))
        obstacles.add(box, points[i], ring)
    return out


# -- the privacy–utility frontier -----------------------------------------------------------------

def _points(d: pd.DataFrame, metric: str, backend: str) -> pd.DataFrame:
    """(dataset, method, eps) -> v, lo, hi: the mean over seeds, the widest interval."""
    sel = d[(d.metric == metric) & (d.backend == backend)]
    return sel.groupby(["dataset", "method", "eps"], sort=False).agg(
        v=("value", "mean"), lo=("ci_low", "min"), hi=("ci_high", "max"))


def _backend(d: pd.DataFrame, name: str, wanted: str | None) -> str | None:
    present = list(dict.fromkeys(d[d.metric == name].backend))
    if not present:
        return None
    if wanted in present:
        return wanted
    spec = registry.all_metrics().get(name)
    b = registry.default_backend(spec, present) if spec else None
    return b if b in present else present[0]


def frontier_panels(d: pd.DataFrame, panels=FRONTIER) -> list[tuple[str, str]]:
    """(metric, backend) of each panel whose metric ``d`` holds."""
    out = []
    for name, wanted in panels:
        b = _backend(d, name, wanted)
        if b is not None:
            out.append((name, b))
    return out


def _errs(g: pd.DataFrame, v: str, lo: str, hi: str) -> np.ndarray:
    return np.nan_to_num(np.vstack([(g[v] - g[lo]).clip(lower=0), (g[hi] - g[v]).clip(lower=0)]))


def eps_text(e) -> str:
    return "∞" if float(e) == math.inf else f"{float(e):g}"


def point_label(dataset: str, method: str, eps: str, with_dataset: bool, alone: bool = False) -> str:
    """``ε=0.5`` for a method with ε (the method is in the legend and the label's colour), else
    the method's name; ``kpdp ε=1`` when the point is its method's only one (no line of ε values
    shows which method it is); prefixed by the data set when a figure holds several.

    Example:
        >>> point_label("lfw", "kpdp", "0.5", False), point_label("lfw", "kpdp", "1.0", False, alone=True)
        ('ε=0.5', 'kpdp ε=1')
        >>> point_label("lfw", "blur", "", True)
        'lfw: blur'
    """
    if eps in ("", None):
        text = method
    else:
        text = f"{method} ε={eps_text(eps)}" if alone else f"ε={eps_text(eps)}"
    return f"{dataset}: {text}" if with_dataset else text


def _frontier_data(d: pd.DataFrame, privacy: str, metric: str, backend: str, spec) -> pd.DataFrame:
    y = _points(d, privacy, STRONGEST).rename(columns=lambda c: "y" + c)
    x = _points(d, metric, backend).rename(columns=lambda c: "x" + c)
    j = x.join(y, how="inner").reset_index()
    if j.empty:
        return j
    j["order"] = [_order((m, e), spec) for m, e in zip(j.method, j.eps)]
    return j.sort_values(["dataset", "order"], kind="stable").reset_index(drop=True)


def _frontier_panel(ax, j: pd.DataFrame, colors: dict, with_dataset: bool) -> tuple[list, list]:
    """Points with error bars on both axes, one line per (data set, method) through its ε values;
    returns the label texts with their colours, and the segments labels should avoid."""
    segments = []
    for (ds, m), g in j.groupby(["dataset", "method"], sort=False):
        has_eps = (g.eps != "").all()
        ax.errorbar(g.xv, g.yv, xerr=_errs(g, "xv", "xlo", "xhi"), yerr=_errs(g, "yv", "ylo", "yhi"),
                    fmt="o-" if has_eps and len(g) > 1 else "o", ms=4, lw=1, elinewidth=0.7, capsize=2,
                    color=colors[m], label=m if not with_dataset else f"{ds}: {m}")
        if has_eps and len(g) > 1:
            segments.append(np.column_stack([g.xv, g.yv]))
        for r in g.itertuples():
            if not math.isnan(r.xlo) and not math.isnan(r.xhi):
                segments.append(np.array([[r.xlo, r.yv], [r.xhi, r.yv]]))
            if not math.isnan(r.ylo) and not math.isnan(r.yhi):
                segments.append(np.array([[r.xv, r.ylo], [r.xv, r.yhi]]))
    points = j.groupby(["dataset", "method"]).size()
    texts = [point_label(r.dataset, r.method, r.eps, with_dataset, alone=points[(r.dataset, r.method)] == 1)
             for r in j.itertuples()]
    return texts, [colors[m] for m in j.method], segments


def _axis_label(spec, name: str, backend: str) -> str:
    if spec is None:
        return f"{name} [{backend}]"
    shown = f" [{backend}]" if backend and backend != spec.backend else ""
    return f"{spec.label}{shown}\n({direction(spec)})"


def draw_frontier(d: pd.DataFrame, spec, panels=FRONTIER):
    """A figure of headline rows ``d``: one panel per utility metric of ``panels`` present, x the
    metric, y the strongest attack's re-identification, both with 95 % intervals; lines join one
    method's ε values; point labels placed without overlap. None without privacy rows or panels.
    Returns (figure, [(metric, backend) of each panel])."""

    privacy = registry.headline("privacy")
    specs = registry.all_metrics()
    data = [(n, b, _frontier_data(d, privacy.name, n, b, spec)) for n, b in frontier_panels(d, panels)]
    data = [p for p in data if not p[2].empty]
    if not data:
        return None, []
    plt = _plt()
    fig, axes = plt.subplots(1, len(data), figsize=(3.7 * len(data) + 0.6, 5.4), dpi=DPI, sharey=True,
                             squeeze=False)
    methods = sorted(dict.fromkeys(zip(d.method, d.eps)), key=lambda c: _order(c, spec))
    names = list(dict.fromkeys(m for m, _ in methods))
    colors = {m: method_colour(k, len(names)) for k, m in enumerate(names)}
    with_dataset = d.dataset.nunique() > 1
    labels = []
    for ax, (name, b, j) in zip(axes[0], data):
        labels.append((ax, j, *_frontier_panel(ax, j, colors, with_dataset)))
        ax.set_xlabel(_axis_label(specs.get(name), name, b), fontsize=8)
        ax.margins(x=0.12, y=0.08), ax.grid(alpha=0.3), ax.tick_params(labelsize=7)
    if privacy.rate:
        axes[0][0].set_ylim(-0.05, 1.08)
    axes[0][0].set_ylabel(f"{privacy.label}, strongest attack\n({direction(privacy)})", fontsize=8)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(6, max(1, len(names))), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    fig.draw_without_rendering()  # limits and layout final: labels are measured against them
    for ax, j, texts, cols, segments in labels:
        ax.set_xlim(ax.get_xlim()), ax.set_ylim(ax.get_ylim())
        segs = [ax.transData.transform(s) for s in segments]
        place_labels(ax, list(j.xv), list(j.yv), texts, cols, segments=segs)
    return fig, [(n, b) for n, b, _ in data]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(name))


def frontier_figures(df: pd.DataFrame, spec, out: Path) -> list[tuple[Path, str, list]]:
    """``frontier_<dataset>.png`` for each data set of the report: (path, data set, panels)."""
    d = headline_rows(select(df, spec))
    plt = _plt()
    made = []
    for ds in dict.fromkeys(d.dataset):
        fig, panels = draw_frontier(d[d.dataset == ds], spec)
        if fig is None:
            continue
        path = out / f"frontier_{_slug(ds)}.png"
        fig.savefig(path, dpi=DPI), plt.close(fig)
        made.append((path, ds, panels))
    return made


def quality_figure(df: pd.DataFrame, spec, out: Path) -> Path | None:
    """``fid_vs_reid.png``: the quality headline metric against the strongest attack, every data
    set of the report in one panel (the frontier's first panel, kept under its old name)."""
    fig, _ = draw_frontier(headline_rows(select(df, spec)), spec, panels=((registry.headline("quality").name, None),))
    if fig is None:
        return None
    fig.savefig(out / "fid_vs_reid.png", dpi=DPI), _plt().close(fig)
    return out / "fid_vs_reid.png"


# -- per-ε curves ---------------------------------------------------------------------------------

def eps_figure(d: pd.DataFrame, m_spec, backend: str, ylabel: str, path: Path) -> Path:
    """The metric against ε (log axis), one line per method with ε and its intervals; methods
    without ε as a dashed reference line with their interval as a band."""
    import matplotlib.ticker

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    sel = d[(d.metric == m_spec.name) & (d.backend == backend)]
    eps_vals = sorted({float(e) for e in sel.eps if e not in ("", "inf")}) or [1.0]
    methods = list(dict.fromkeys(sel.method))
    for k, m in enumerate(methods):
        sm = sel[sel.method == m]
        colour = method_colour(k, len(methods))
        if (sm.eps == "").all():
            ax.axhline(sm.value.astype(float).mean(), ls="--", lw=1, color=colour, label=m)
            if sm.ci_low.notna().all():
                ax.axhspan(sm.ci_low.min(), sm.ci_high.max(), color=colour, alpha=0.08, lw=0)
        else:
            sm = sm[sm.eps != ""].assign(e=lambda x: x.eps.astype(float)).groupby("e").agg(
                value=("value", "mean"), lo=("ci_low", "min"), hi=("ci_high", "max"))
            yerr = np.vstack([(sm.value - sm.lo).clip(lower=0), (sm.hi - sm.value).clip(lower=0)])
            ax.errorbar(sm.index, sm.value, yerr=None if np.isnan(yerr).all() else np.nan_to_num(yerr),
                        fmt="o-", color=colour, label=m, capsize=2)
    ax.set_xscale("log")
    ax.set_xticks(eps_vals, [f"{e:g}" for e in eps_vals])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("privacy budget ε (per face)"), ax.set_ylabel(ylabel)
    if m_spec.rate:
        ax.set_ylim(-0.02, 1.02)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout(), fig.savefig(path, dpi=DPI), plt.close(fig)
    return path
