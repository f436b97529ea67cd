"""``bench check``: the regression gate. Compares a run's aggregates with a committed baseline
(``reports/baselines/<name>.json``): each entry names a (dataset, method, ε, seed, metric,
backend), the baseline value, its ``n``, the direction that counts as worse and a tolerance (both
from the metric registry when the baseline is written). Like is compared with like: a value
computed on another number of images is a failure of its own (``N_DIFFERS``), never a pass.
Rows of an attacker that failed its sanity check are ``INVALID``: a broken attacker reads as
perfect privacy. Exit 1 on any regression, missing value, different ``n`` or invalid attacker."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from bench.attackers.registry import IGNORANT
from bench.metrics import registry
from bench.report.export import with_attacker_columns


def rules() -> dict[str, tuple[str, float]]:
    """metric -> (direction that is worse, absolute tolerance), for every gated metric."""
    return {m.name: (m.worse, m.tolerance) for m in registry.all_metrics().values()
            if m.worse is not None and m.tolerance is not None}


def _read(run_dir: Path) -> pd.DataFrame:
    df = pd.read_csv(Path(run_dir) / "metrics.csv", keep_default_na=False)
    df["eps"] = df["eps"].astype(str)
    for c in ("ci_low", "ci_high"):
        df[c] = pd.to_numeric(df[c], errors="coerce") if c in df else math.nan
    return with_attacker_columns(df)


def make_baseline(run_dir: Path, metrics: list[str] | None = None) -> dict:
    df = _read(run_dir)
    gated = rules()
    entries = []
    for r in df.itertuples(index=False):
        if r.metric not in gated or (metrics and r.metric not in metrics) or r.value == "":
            continue
        direction, tol = gated[r.metric]
        if not r.valid:  # an attacker that failed its sanity check is no reference
            continue
        entries.append({"dataset": r.dataset, "method": r.method, "eps": str(r.eps), "seed": int(r.seed),
                        "metric": r.metric, "backend": r.backend, "attacker": r.attacker, "value": float(r.value),
                        "n": int(r.n),
                        "ci_low": None if math.isnan(r.ci_low) else float(r.ci_low),
                        "ci_high": None if math.isnan(r.ci_high) else float(r.ci_high),
                        "worse": direction, "tolerance": tol})
    return {"source": str(run_dir), "entries": entries}


def _ci(lo, hi) -> str:
    if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)):
        return ""
    return f"[{lo:.3f}, {hi:.3f}]"


def check(run_dir: Path, baseline_file: Path) -> tuple[bool, pd.DataFrame]:
    base = json.loads(Path(baseline_file).read_text())
    df = _read(run_dir)
    index = {(r.dataset, r.method, r.eps, int(r.seed), r.metric, r.backend, r.attacker): r
             for r in df.itertuples(index=False)}
    gated = rules()
    rows = []
    for e in base["entries"]:
        key = (e["dataset"], e["method"], e["eps"], e["seed"], e["metric"], e["backend"], _attacker(e))
        worse_dir, tol = gated.get(e["metric"], (e["worse"], e["tolerance"]))  # the registry decides
        r = index.get(key)
        label = {**_label(e), "baseline": e["value"], "baseline_ci": _ci(e.get("ci_low"), e.get("ci_high")),
                 "n_baseline": e.get("n")}
        if r is None:
            rows.append({**label, "now": None, "now_ci": "", "n": None, "delta": None, "status": "MISSING"})
            continue
        now = float(r.value) if r.value != "" else float("nan")
        delta = now - e["value"]
        worse = delta if worse_dir == "up" else -delta
        if not r.valid:  # a broken attacker would read as perfect privacy
            status = "INVALID"
        elif e.get("n") is not None and int(r.n) != int(e["n"]):
            status = "N_DIFFERS"
        elif worse > tol or now != now:
            status = "REGRESSED"
        else:
            status = "improved" if worse < -tol else "ok"
        rows.append({**label, "now": now, "now_ci": _ci(r.ci_low, r.ci_high), "n": int(r.n), "delta": delta,
                     "status": status})
    table = pd.DataFrame(rows)
    failed = bool(len(table) and table.status.isin(["REGRESSED", "MISSING", "N_DIFFERS", "INVALID"]).any())
    return not failed, table


def _label(e):
    return {"dataset": e["dataset"], "method": e["method"], "eps": e["eps"], "metric": e["metric"],
            "backend": e["backend"], "attacker": _attacker(e)}


def _attacker(e) -> str:
    """A baseline written before attackers existed: its privacy entries were the ignorant attacker's."""
    if "attacker" in e:
        return e["attacker"]
    spec = registry.all_metrics().get(e["metric"])
    return IGNORANT if spec is not None and spec.privacy else ""
