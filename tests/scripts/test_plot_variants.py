"""scripts/plot_variants.py reads the strongest attack's rank-1 and FID of the named methods from a
run's metrics.csv, and names the run's methods when asked for one it lacks."""
import csv

import pytest

from scripts.plot_variants import plot, point

FIELDS = ["dataset", "method", "eps", "seed", "metric", "backend", "value", "n", "ci_low", "ci_high", "attacker", "valid"]


def _run(tmp_path):
    rows = []
    for method, rank1, fid in (("kpdp", 0.13, 63.9), ("kpdp[generator=v3,weights=/x/g2452.safetensors]", 0.19, 47.3)):
        rows += [dict(dataset="lfw", method=method, eps=1.0, seed=0, metric="reid_rank1", backend="dlib", value=0.9,
                      n=150, ci_low=0.8, ci_high=0.95, attacker="lazy", valid=1),  # not the strongest row
                 dict(dataset="lfw", method=method, eps=1.0, seed=0, metric="reid_rank1", backend="max", value=rank1,
                      n=150, ci_low=rank1 - 0.05, ci_high=rank1 + 0.05, attacker="max", valid=1),
                 dict(dataset="lfw", method=method, eps=1.0, seed=0, metric="fid", backend="inception-2015-12-05", value=fid,
                      n=200, ci_low=fid - 3, ci_high=fid + 3, attacker="", valid=1)]
    with open(tmp_path / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(rows)
    return tmp_path


def test_plots_the_strongest_attack_against_fid(tmp_path):
    import pandas as pd

    run = _run(tmp_path)
    d = pd.read_csv(run / "metrics.csv", keep_default_na=False)
    assert point(d, "kpdp", "reid_rank1", "max", "max") == pytest.approx((0.13, 0.08, 0.18))
    plot(str(run), str(tmp_path / "f.png"), [("v2", "kpdp"), ("v3 2452", "kpdp[generator=v3,weights=/x/g2452.safetensors]")])
    assert (tmp_path / "f.png").stat().st_size > 5000


def test_an_unknown_method_is_answered_with_the_runs_methods(tmp_path):
    run = _run(tmp_path)
    with pytest.raises(SystemExit, match=r"no reid_rank1 row for method 'kpdp\[v9\]'.*its methods: kpdp, kpdp\[generator"):
        plot(str(run), str(tmp_path / "f.png"), [("v9", "kpdp[v9]")])
