"""``bench check``: the regression gate. Compares a run's aggregates with a committed baseline
(``reports/baselines/<name>.json``): each entry names a (dataset, method, ε, metric, backend), the
baseline value, the direction that counts as worse, and a tolerance. Exit 1 on any regression."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

# the direction in which a metric gets worse, and its default absolute tolerance
RULES = {
    "reid_rank1": ("up", 0.02), "reid_rank1_same": ("up", 0.02), "reid_tar_far1e-3": ("up", 0.02),
    "intrusion_rate": ("up", 0.02), "detection_rate": ("down", 0.02), "fid": ("up", 2.0), "kid": ("up", 0.005),
    "landmark_nme": ("up", 0.01), "landmark_nme_target": ("up", 0.01), "landmark_fail_rate": ("up", 0.02),
    "bg_psnr": ("down", 0.5), "bg_ssim": ("down", 0.005),
}


def make_baseline(run_dir: Path, metrics: list[str] | None = None) -> dict:
    df = pd.read_csv(Path(run_dir) / "metrics.csv", keep_default_na=False)
    entries = []
    for r in df.itertuples(index=False):
        if r.metric not in RULES or (metrics and r.metric not in metrics) or r.value == "":
            continue
        direction, tol = RULES[r.metric]
        entries.append({"dataset": r.dataset, "method": r.method, "eps": str(r.eps), "seed": int(r.seed),
                        "metric": r.metric, "backend": r.backend, "value": float(r.value), "n": int(r.n),
                        "worse": direction, "tolerance": tol})
    return {"source": str(run_dir), "entries": entries}


def check(run_dir: Path, baseline_file: Path) -> tuple[bool, pd.DataFrame]:
    base = json.loads(Path(baseline_file).read_text())
    df = pd.read_csv(Path(run_dir) / "metrics.csv", keep_default_na=False)
    df["eps"] = df["eps"].astype(str)
    index = {(r.dataset, r.method, r.eps, int(r.seed), r.metric, r.backend): r for r in df.itertuples(index=False)}
    rows = []
    for e in base["entries"]:
        key = (e["dataset"], e["method"], e["eps"], e["seed"], e["metric"], e["backend"])
        r = index.get(key)
        if r is None:
            rows.append({**_label(e), "baseline": e["value"], "now": None, "delta": None, "status": "MISSING"})
            continue
        now = float(r.value) if r.value != "" else float("nan")
        delta = now - e["value"]
        worse = delta if e["worse"] == "up" else -delta
        status = "REGRESSED" if worse > e["tolerance"] or now != now else ("improved" if worse < -e["tolerance"]
                                                                            else "ok")
        rows.append({**_label(e), "baseline": e["value"], "now": now, "delta": delta, "status": status})
    table = pd.DataFrame(rows)
    failed = bool(len(table) and table.status.isin(["REGRESSED", "MISSING"]).any())
    return not failed, table


def _label(e):
    return {"dataset": e["dataset"], "method": e["method"], "eps": e["eps"], "metric": e["metric"],
            "backend": e["backend"]}
