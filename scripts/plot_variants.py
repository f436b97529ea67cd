"""The privacy-utility frontier of a few variants of one run, with short names: strongest rank-1
(every attacker, both recognizers) against FID, each with its 95 % interval, one point per variant.

    python scripts/plot_variants.py RUN_DIR OUT.png "v2=kpdp" "v3 2452=kpdp[blend=poisson,...]" ...

``bench report`` draws the same frontier for every method of a run, labelled with the full method
specs; for a progress page that compares checkpoints, whose specs differ only in a weights path,
the labels are unreadable there. Values come from the run's ``metrics.csv``, the same rows
``bench report`` reads (``reid_rank1`` of the ``max`` backend and attacker: the strongest attack).
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def point(d: pd.DataFrame, method: str, metric: str, backend: str | None = None, attacker: str | None = None) -> tuple:
    """(value, low, high) of the first row of ``metric`` for ``method`` (``backend``/``attacker``: None, any)."""
    sel = d[(d.method == method) & (d.metric == metric)]
    if backend is not None:
        sel = sel[sel.backend == backend]
    if attacker is not None:
        sel = sel[sel.attacker == attacker]
    if sel.empty:
        known = ", ".join(sorted(d.method.unique()))
        raise SystemExit(f"no {metric} row for method {method!r} in the run; its methods: {known}")
    r = sel.iloc[0]
    return float(r.value), float(r.ci_low), float(r.ci_high)


def plot(run: str, png: str, variants: list[tuple[str, str]]) -> None:
    d = pd.read_csv(f"{run}/metrics.csv", keep_default_na=False)
    d = d[d.metric.isin(["reid_rank1", "fid"])]
    for c in ("value", "ci_low", "ci_high"):
        d[c] = pd.to_numeric(d[c], errors="coerce")
    fig, ax = plt.subplots(figsize=(6.4, 4.4), constrained_layout=True)
    for i, (name, method) in enumerate(variants):
        y, ylo, yhi = point(d, method, "reid_rank1", "max", "max")
        x, xlo, xhi = point(d, method, "fid")
        ax.errorbar(x, y, xerr=[[x - xlo], [xhi - x]], yerr=[[y - ylo], [yhi - y]], fmt="o", ms=4, lw=0.8, capsize=2,
                    label=f"{i + 1}  {name}")
        # checkpoints of one run sit close together: a number beside each point, the names in the legend
        ax.annotate(str(i + 1), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, weight="bold")
    ax.legend(fontsize=7, loc="best", handlelength=1.2)
    ax.set_xlabel("FID to the originals (lower: more realistic)", fontsize=8)
    ax.set_ylabel("re-identification rank-1, strongest attack\n(lower: more private)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.set_title(f"{Path(run).name}: 95 % identity-bootstrap intervals", fontsize=8)
    fig.savefig(png, dpi=130)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    plot(sys.argv[1], sys.argv[2], [tuple(v.split("=", 1)) for v in sys.argv[3:]])
