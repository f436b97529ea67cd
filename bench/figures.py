"""The report's figures beyond the per-ε curves: re-identification by attacker, and the
privacy–utility frontier (strongest attack against each utility metric)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

#: utility metrics of the frontier, each with the backend shown (None: the first present)
UTILITY = (("detection_rate", "mtcnn"), ("fid", None), ("expression_agreement", None),
           ("attribute_agreement", "mean"), ("pose_error", "mean"), ("identity_diversity", None))


def cell_label(method: str, eps) -> str:
    """``kpdp, eps 1``; ``eps`` None or '' for methods without ε (PIL's default font, used by the
    sample grids, has no ε glyph)."""
    return method + (f", eps {float(eps):g}" if eps not in (None, "", "nan") else "")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def attacker_figure(df: pd.DataFrame, spec, out: Path) -> Path:
    """Grouped bars: the headline privacy metric (each attacker's strongest recognizer) per method
    (ε) and attacker, with intervals; an attacker that failed its sanity check is hatched."""
    plt = _plt()
    from .metrics import registry

    privacy = registry.headline("privacy")
    from .report import select

    d = select(df, spec)
    d = d[(d.metric == privacy.name) & (d.backend == "max") & (d.attacker.astype(str) != "")
          & (d.attacker != "max")]
    attackers = list(dict.fromkeys(d.attacker))
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
    ax.set_xticks(range(len(cells)), [cell_label(m, e if e else None) for m, e in cells], rotation=30, ha="right",
                  fontsize=7)
    ax.set_ylabel(f"{privacy.label} (max over recognizers)"), ax.set_ylim(0, 1.02)
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), title="attacker", fontsize=7), ax.grid(alpha=0.3, axis="y")
    fig.tight_layout(), fig.savefig(out / "reid_by_attacker.png", dpi=150), plt.close(fig)
    return out / "reid_by_attacker.png"


def privacy_utility_figure(df: pd.DataFrame, spec, out: Path) -> Path | None:
    """One panel per utility metric present: x = the metric (error bars), y = the strongest valid
    attack's re-identification (error bars), one point per method (ε)."""
    from .export import headline_rows
    from .metrics import registry
    from .report import select

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
    y = d[(d.metric == privacy.name) & (d.backend == "max")]
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
            ax.errorbar(vx, vy, xerr=ex, yerr=ey, fmt="o", ms=4, capsize=2, color=f"C{k % 10}",
                        label=cell_label(m, e))
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
