import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pandas as pd
import pytest

from bench import RunConfig, evaluate
from tests.conftest import ROOT
from tests.odd_images import make_odd_images

FAST = ["--recognizers", "dlib", "--detectors", "dlib-hog", "--metrics", "reid,detection,landmarks,background"]


def bench(*args, env=None, timeout=900):
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def test_small_grid_through_the_python_api(tmp_path):
    cfg = RunConfig(methods=["blur", "dppix"], eps=[1.0, 4.0], limit=8, out=str(tmp_path / "run"), quiet=True,
                    recognizers=["dlib", "facenet-casia"], detectors=["mtcnn"])
    df = evaluate(cfg, argv=["test"])
    csv = pd.read_csv(tmp_path / "run" / "metrics.csv", keep_default_na=False)
    assert list(csv.columns) == ["dataset", "method", "eps", "seed", "metric", "backend", "value", "n", "ci_low",
                                 "ci_high", "attacker", "valid"]
    assert set(csv["method"]) == {"original", "blur", "dppix"}
    assert set(csv[csv.method == "blur"]["eps"]) == {""} and set(csv[csv.method == "dppix"]["eps"]) == {"1.0", "4.0"}
    get = lambda m, e, metric, b, a="ignorant": df[(df.method == m) & (df.eps == e) & (df.metric == metric)  # noqa
                                                  & (df.backend == b) & (df.attacker.isin([a, ""]))]
    assert get("original", "", "reid_rank1_same", "dlib").value.item() == 1.0
    assert abs(get("original", "", "fid", "inception-2015-12-05").value.item()) < 1e-3
    per_rec = [get("blur", "", "reid_rank1", r).value.item() for r in ("dlib", "facenet-casia")]
    assert get("blur", "", "reid_rank1", "max").value.item() == max(per_rec)
    rank1 = get("blur", "", "reid_rank1", "dlib")
    assert rank1.ci_low.item() <= rank1.value.item() <= rank1.ci_high.item()
    assert (get("dppix", "1.0", "bg_psnr", "").value == 100.0).all()
    assert get("dppix", "1.0", "reid_rank1", "dlib").n.item() > 0
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "| lfw-sample | dppix | 1.0 |" in summary and "Skipped images: 0" in summary
    meta = dict(sqlite3.connect(tmp_path / "run" / "results.sqlite").execute("SELECT key, value FROM run"))
    for key in ("versions", "backends", "seeds", "argv", "methods", "noise_mode"):
        assert key in meta
    assert "resnet-" in meta["backends"] and "torch" in meta["versions"]
    phases = json.loads(meta["timing"])["phases"]  # the harness reports the longest serial stretch from these
    assert {"setup", "grid", "aggregation"} <= set(phases) and all(v > 0 for v in phases.values())
    assert sum(phases.values()) <= json.loads(meta["timing"])["wall"]


def _aggregates(run):
    db = sqlite3.connect(run / "results.sqlite")
    rows = db.execute("SELECT dataset, method, eps, seed, metric, backend, attacker, value, n FROM aggregates "
                      "WHERE metric != 'sec_per_image' ORDER BY 1, 2, 3, 4, 5, 6, 7").fetchall()
    n_images = db.execute("SELECT COUNT(*), COUNT(DISTINCT dataset || method || eps || seed || image_id) "
                          "FROM images").fetchone()
    return rows, n_images


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
        except OSError:
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("executor", ["local", "processes"])
def test_resume_after_sigkill_gives_identical_results(tmp_path, executor):
    args = ["run", "--methods", "pixelate-8,dppix", "--eps", "1,4", "--limit", "10", *FAST,
            "--executor", executor, "--workers", "2", "--shard-size", "2"]
    killed = tmp_path / "killed"
    # a cold cache of its own: warm from an earlier test, the run would finish before the kill lands
    cache = {"KPDP_BENCH_CACHE": str(tmp_path / "cache")}
    log = tmp_path / "killed.log"
    with open(log, "w") as out:
        p = subprocess.Popen([sys.executable, "-m", "bench", *args, "--out", str(killed), "--quiet"], cwd=ROOT,
                             stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **cache})
    deadline, n = time.time() + 600, 0
    while time.time() < deadline and p.poll() is None:
        time.sleep(0.5)
        try:
            n = sqlite3.connect(killed / "results.sqlite").execute("SELECT COUNT(*) FROM images").fetchone()[0]
        except sqlite3.Error:
            continue
        if n >= 12:
            break
    # once in a CI run beside another job's workers the driver had stored nothing when this was
    # checked, and had no workers left: say what it printed
    assert p.poll() is None and n >= 12, f"the run stored {n} image records; it printed:\n{log.read_text()[-3000:]}"
    workers = _children(p.pid)
    assert workers or executor == "local"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.5)
    assert not any(_alive(w) for w in workers), "worker processes outlived their killed driver"
    partial = sqlite3.connect(killed / "results.sqlite").execute("SELECT COUNT(*) FROM images").fetchone()[0]
    assert 0 < partial < 40, "the kill must land midway"
    r = bench(*args, "--out", str(killed), "--quiet", env=cache)
    assert r.returncode == 0, r.stderr
    r = bench(*args, "--out", str(tmp_path / "clean"), "--quiet", env=cache)
    assert r.returncode == 0, r.stderr
    (rows_k, n_k), (rows_c, n_c) = _aggregates(killed), _aggregates(tmp_path / "clean")
    assert rows_k == rows_c and len(rows_k) > 20
    # 4 cells (original, pixelate-8, dppix@1, dppix@4) and the lazy attackers' second release of
    # dppix@1 and dppix@4 (pixelate's equals its first) x 10 images, and the semi attackers' 10
    # training images (the sample's devtrain people) x the 4 cells, no duplicate
    assert n_k == n_c == (100, 100)


def test_bad_inputs_are_skipped_with_reasons(tmp_path, sample, face_image):
    root = tmp_path / "data"
    cases = make_odd_images(root / "odd_person", face_image[0])
    for s in list(sample)[:4]:  # two real people with two images each
        (root / s.identity).mkdir(exist_ok=True)
        shutil.copy(s.path, root / s.identity / s.path.name)
    r = bench("run", "--methods", "blur", "--datasets", "folder", "--root", str(root), "--out", str(tmp_path / "run"),
              "--quiet", *FAST)
    assert r.returncode == 0, r.stderr
    skipped = {row[1].split("/")[-1]: row[4] for row in
               sqlite3.connect(tmp_path / "run" / "results.sqlite").execute("SELECT * FROM skipped")}
    expected = {"zero": "empty file", "text": "not a readable image", "corrupt": "corrupt", "huge": "too large",
                "tiny": "too small", "noface": "no face"}
    for stem, reason in expected.items():
        assert reason in skipped.pop(stem), stem
    assert skipped == {}, f"unexpected skips {skipped}"  # alpha, cmyk, gray16, gray, three faces: evaluated
    evaluated = sqlite3.connect(tmp_path / "run" / "results.sqlite").execute(
        "SELECT image_id FROM images WHERE method='blur'").fetchall()
    assert {"odd_person/three", "odd_person/cmyk", "odd_person/gray16"} <= {e[0] for e in evaluated}
    assert f"Skipped images: {len(expected)}" in (tmp_path / "run" / "summary.md").read_text()
    assert len(cases) == 11


@pytest.mark.parametrize("args,message", [
    (["--methods", "nope"], "unknown method 'nope'; valid: .*blur"),
    (["--methods", "dppix", "--eps", "0"], "ε must be a number > 0"),
    (["--methods", "dppix", "--eps", "abc"], "'abc' is not a number"),
    (["--methods", "blur", "--metrics", "speed"], "unknown metric group 'speed'; valid: reid"),
    (["--methods", "blur", "--datasets", "lfw", "--root", "/nonexistent"], "does not exist"),
    (["--methods", "blur", "--recognizers", "nope"], "unknown recognizer 'nope'; valid"),
])
def test_bad_arguments_exit_2_and_write_nothing(tmp_path, args, message):
    import re

    out = tmp_path / "run"
    r = bench("run", *args, "--out", str(out))
    assert r.returncode == 2 and re.search(message, r.stderr), r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


def test_third_party_plugin_method(tmp_path):
    """A package declaring an entry point in kpdp_bench.methods is found without touching this repo."""
    site = tmp_path / "site"
    (site / "swirl_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "swirl_plugin-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: swirl-plugin\n"
                                                                   "Version: 0.1\n")
    (site / "swirl_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[kpdp_bench.methods]\ninvert = swirl_plugin:Invert\n")
    (site / "swirl_plugin.py").write_text(
        "from kpdp.method import Anonymizer, paste_in_mask\n"
        "class Invert(Anonymizer):\n"
        "    name = 'invert'\n"
        "    def anonymize_face(self, image, face, mask, seed):\n"
        "        return paste_in_mask(image, 255 - image, mask), None, {}\n")
    env = {"PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    assert "invert" in bench("methods", env=env).stdout.split()
    r = bench("run", "--methods", "invert", "--limit", "4", "--out", str(tmp_path / "run"), "--quiet", *FAST, env=env)
    assert r.returncode == 0, r.stderr
    csv = pd.read_csv(tmp_path / "run" / "metrics.csv", keep_default_na=False)
    assert (csv.method == "invert").sum() > 5
