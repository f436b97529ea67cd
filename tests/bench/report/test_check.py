import json

import pandas as pd
import pytest

from bench.report.check import check, make_baseline

ROWS = [("lfw-sample", "kpdp", "1.0", 0, "reid_rank1", "max", 0.10, 100),
        ("lfw-sample", "kpdp", "1.0", 0, "detection_rate", "mtcnn", 0.97, 100),
        ("lfw-sample", "blur", "", 0, "reid_rank1", "max", 0.05, 100)]


def _run(tmp_path, name, rows):
    d = tmp_path / name
    d.mkdir()
    pd.DataFrame(rows, columns=["dataset", "method", "eps", "seed", "metric", "backend", "value", "n"]).to_csv(
        d / "metrics.csv", index=False)
    return d


def test_check_passes_on_the_real_run_and_fails_on_a_doctored_one(tmp_path):
    real = _run(tmp_path, "real", ROWS)
    (tmp_path / "base.json").write_text(json.dumps(make_baseline(real)))
    ok, table = check(real, tmp_path / "base.json")
    assert ok and (table.status == "ok").all() and len(table) == 3
    doctored = [list(r) for r in ROWS]
    doctored[0][6] = 0.15  # re-identification rose by 0.05 > tolerance 0.02
    ok, table = check(_run(tmp_path, "doctored", doctored), tmp_path / "base.json")
    assert not ok and table.set_index("method").loc["kpdp"].query("metric == 'reid_rank1'").status.item() == "REGRESSED"
    better = [list(r) for r in ROWS]
    better[1][6] = 1.0  # detection rose: an improvement, not a failure
    ok, table = check(_run(tmp_path, "better", better), tmp_path / "base.json")
    assert ok and "improved" in set(table.status)
    ok, table = check(_run(tmp_path, "missing", ROWS[1:]), tmp_path / "base.json")
    assert not ok and "MISSING" in set(table.status)


def test_check_cli_exit_codes(tmp_path):
    import subprocess
    import sys

    real = _run(tmp_path, "real", ROWS)
    base = tmp_path / "b.json"
    r = subprocess.run([sys.executable, "-m", "bench", "check", str(real), "--baseline", str(base), "--write-baseline"])
    assert r.returncode == 0
    assert subprocess.run([sys.executable, "-m", "bench", "check", str(real), "--baseline", str(base)]).returncode == 0
    bad = [list(r) for r in ROWS]
    bad[2][6] = 0.5
    r = subprocess.run([sys.executable, "-m", "bench", "check", str(_run(tmp_path, "bad", bad)), "--baseline",
                        str(base)], capture_output=True, text=True)
    assert r.returncode == 1 and "REGRESSED" in r.stdout


def test_check_fails_when_n_differs(tmp_path):
    """Like with like: the same value measured on other images is not a pass."""
    base_run = _run(tmp_path, "base", ROWS)
    (tmp_path / "base.json").write_text(json.dumps(make_baseline(base_run)))
    fewer = [list(r) for r in ROWS]
    fewer[2][7] = 60  # blur measured on 60 probes instead of 100, value unchanged
    ok, table = check(_run(tmp_path, "fewer", fewer), tmp_path / "base.json")
    assert not ok
    assert table.set_index("method").loc["blur"].status == "N_DIFFERS"


def test_gate_rules_come_from_the_registry():
    from bench.metrics import registry
    from bench.report.check import rules

    r = rules()
    assert r["reid_rank1"] == ("up", registry.metric("reid_rank1").tolerance)
    assert r["detection_rate"][0] == "down" and r["fid"][0] == "up"
    assert "sec_per_image" not in r and "skipped" not in r


def test_baseline_and_check_carry_intervals(tmp_path):
    rows = [r + (r[6] - 0.01, r[6] + 0.02) for r in ROWS]
    d = tmp_path / "ci"
    d.mkdir()
    pd.DataFrame(rows, columns=["dataset", "method", "eps", "seed", "metric", "backend", "value", "n", "ci_low",
                                "ci_high"]).to_csv(d / "metrics.csv", index=False)
    base = make_baseline(d)
    assert base["entries"][0]["ci_low"] == pytest.approx(0.09)
    (tmp_path / "b.json").write_text(json.dumps(base))
    ok, table = check(d, tmp_path / "b.json")
    assert ok and table.now_ci.iloc[0] == "[0.090, 0.120]"
