import json

import pandas as pd

from bench.check import check, make_baseline

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
