"""Faults that real disks and users produce: a damaged feature cache or result store, a full disk,
Ctrl-C / SIGTERM, a backend failing on every image, two runs on one --out. None may become silent
skips, lost work or a traceback; each resumed run equals an uninterrupted one.

Runs are tiny (6 LFW-sample images, detection with dlib-HOG) and in-process where possible, so
that the models load once."""
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from bench.cli.main import main as bench_main
from tests.conftest import ROOT

N = 6
ARGS = ["run", "--methods", "blur", "--limit", str(N), "--metrics", "detection", "--detectors", "dlib-hog",
        "--recognizers", "dlib", "--executor", "local", "--quiet"]


def run(out, *extra, capsys=None):
    code = bench_main([*ARGS, *extra, "--out", str(out)])
    err = capsys.readouterr().err if capsys else ""
    return code, err


def results(out):
    """(aggregates without timings, per-image records, (rows, distinct rows), skips) of a run."""
    db = sqlite3.connect(out / "results.sqlite")
    try:
        aggs = db.execute("SELECT dataset, method, eps, seed, metric, backend, value, n FROM aggregates "
                          "WHERE metric != 'sec_per_image' ORDER BY 1, 2, 3, 4, 5, 6").fetchall()
        recs = db.execute("SELECT method, image_id, status, json_remove(record, '$.sec') FROM images "
                          "ORDER BY 1, 2").fetchall()
        n = db.execute("SELECT COUNT(*), COUNT(DISTINCT dataset || method || eps || seed || image_id) "
                       "FROM images").fetchone()
        skips = db.execute("SELECT image_id, stage, reason FROM skipped").fetchall()
    finally:
        db.close()
    return aggs, recs, n, skips


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("KPDP_BENCH_CACHE", str(d))
    return d


REF = {}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run with a cold cache of its own: its results; its store and cache are kept in
    ``REF`` for tests to start from copies (a finished run, a warm cache)."""
    out = tmp_path_factory.mktemp("reference")
    old = os.environ.get("KPDP_BENCH_CACHE")
    os.environ["KPDP_BENCH_CACHE"] = str(out / "cache")
    try:
        assert bench_main([*ARGS, "--out", str(out / "run")]) == 0
    finally:
        if old is None:
            del os.environ["KPDP_BENCH_CACHE"]
        else:
            os.environ["KPDP_BENCH_CACHE"] = old
    checkpoint(out / "cache" / "features.sqlite")
    checkpoint(out / "run" / "results.sqlite")
    REF.update(run=out / "run", cache=out / "cache" / "features.sqlite")
    res = results(out / "run")
    assert res[2] == (2 * N, 2 * N) and not res[3]
    return res


def warm_cache(cache_dir):
    cache_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(REF["cache"], cache_dir / "features.sqlite")
    return cache_dir / "features.sqlite"


def finished_run(out):
    shutil.copytree(REF["run"], out)
    return out / "results.sqlite"


def checkpoint(path):
    """Fold the WAL into the file, as the last connection's close does when a run's process ends."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def damage(path, offset, n=4096, seed=0):
    """Overwrite ``n`` bytes at ``offset`` (what a failing disk or an interrupted copy leaves)."""
    data = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


# -- the feature cache -------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["middle", "page2"])
def test_damaged_cache_is_moved_aside_and_rebuilt_never_a_skip(tmp_path, cache_dir, reference, capsys, where):
    path = warm_cache(cache_dir)
    size = path.stat().st_size
    assert size > 16384
    damage(path, (size // 2) // 4096 * 4096 if where == "middle" else 4096, 4096 if where == "middle" else 2048)
    code, err = run(tmp_path / "run", capsys=capsys)
    aggs, recs, n, skips = results(tmp_path / "run")
    assert code == 0, err
    assert skips == [], "a damaged cache must never skip an image"
    assert (aggs, recs, n) == reference[:3]  # the values of a clean run
    assert str(path) in err and "feature cache" in err  # one warning naming the file
    if where == "page2":  # b-tree damage: the file is moved aside
        assert list(cache_dir.glob("features.sqlite.damaged-*"))


def test_cache_info_and_clear(tmp_path, cache_dir, reference, capsys):
    import re

    warm_cache(cache_dir)
    assert bench_main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert str(cache_dir / "features.sqlite") in out and "integrity: ok" in out
    per_kind = {k: int(n) for k, n in re.findall(r"^[|] ([\w:.-]+) [|] (\d+) [|] [\d.]+ \w+ [|]$", out, re.M)}
    anon = [k for k in per_kind if k.startswith("anonymised")]
    assert anon and any(k.startswith("original") for k in per_kind) and "dlib-hog" in out  # per kind, per version
    assert bench_main(["cache", "clear", "--kind", anon[0]]) == 0
    assert f"cleared {per_kind[anon[0]]} entries of kind '{anon[0]}'" in capsys.readouterr().out
    assert bench_main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert f"| {anon[0]} |" not in out and all(f"| {k} | {n} |" in out for k, n in per_kind.items() if k != anon[0])
    assert bench_main(["cache", "clear", "--kind", "nope"]) == 2
    assert bench_main(["cache", "clear"]) == 0
    assert f"cleared {sum(per_kind.values()) - per_kind[anon[0]]} entries" in capsys.readouterr().out


# -- the result store ----------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["pages", "json"])
def test_damaged_store_is_salvaged_and_the_run_completed(tmp_path, cache_dir, reference, capsys, where):
    out = tmp_path / "run"
    store = finished_run(out)
    warm_cache(cache_dir)
    size = store.stat().st_size
    if where == "pages":
        damage(store, (size // 2) // 4096 * 4096)
    else:  # a sound SQLite file whose text no longer parses ("Expecting ',' delimiter")
        db = sqlite3.connect(store)
        db.execute("UPDATE originals SET record = substr(record, 1, 40) || '#' || substr(record, 42) "
                   "WHERE rowid = 2")
        db.commit()
        db.close()
    code, err = run(out, capsys=capsys)  # the same command
    assert code == 0, err
    assert str(store) in err and "salvage" in err and "Traceback" not in err
    assert list(out.glob("results.sqlite.damaged-*"))
    assert results(out)[:3] == reference[:3]  # lost rows recomputed, no duplicates
    assert sqlite3.connect(store).execute("PRAGMA quick_check").fetchone()[0] == "ok"


def test_store_damaged_beyond_salvage_is_refused_with_what_to_do(tmp_path, cache_dir, reference, capsys):
    out = tmp_path / "run"
    store = finished_run(out)
    warm_cache(cache_dir)
    damage(store, 0, 4096)  # the header and the schema
    code, err = run(out, capsys=capsys)
    assert code == 5, err
    assert str(store) in err and "move it away" in err and "Traceback" not in err
    store.rename(out / "aside.sqlite")  # what the message says to do
    assert run(out, capsys=capsys)[0] == 0
    assert results(out)[:3] == reference[:3]


# -- a run that measured nothing, or failed for one reason -----------------------------------------------
def test_a_backend_failing_on_every_image_fails_the_run_and_is_retried(tmp_path, cache_dir, reference, capsys,
                                                                      monkeypatch):
    import bench.run.executor as ex

    real = ex.analyse_original

    def broken(*a, **k):
        raise RuntimeError("landmark model crashed (simulated)")

    warm_cache(cache_dir)
    monkeypatch.setattr(ex, "analyse_original", broken)
    code, err = run(tmp_path / "run", capsys=capsys)
    assert code == 4, err
    assert "landmark model crashed" in err and f"all {N} were skipped" in err
    calls = []
    monkeypatch.setattr(ex, "analyse_original", lambda *a, **k: calls.append(1) or (
        broken() if len(calls) <= 4 else real(*a, **k)))
    code, err = run(tmp_path / "run2", capsys=capsys)  # 4 of 6: most images, one reason
    assert code == 4 and "4 of 6 images skipped" in err, err
    monkeypatch.setattr(ex, "analyse_original", real)
    code, err = run(tmp_path / "run", capsys=capsys)  # fixed: the same command retries them
    assert code == 0, err
    assert results(tmp_path / "run")[:4] == reference[:4]


def test_images_without_a_face_stay_skips_but_all_skipped_fails(tmp_path, cache_dir, capsys, face_image):
    from PIL import Image

    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    Image.fromarray(face_image[0]).save(root / "a" / "face.png")
    Image.fromarray(np.full((120, 120, 3), 127, np.uint8)).save(root / "a" / "blank.png")
    (root / "a" / "broken.jpg").write_text("not an image")
    args = ["--datasets", "folder", "--root", str(root), "--limit", "3"]
    code, err = run(tmp_path / "run", *args, capsys=capsys)
    assert code == 0, err
    assert {s[0] for s in results(tmp_path / "run")[3]} == {"a/blank", "a/broken"}
    (root / "a" / "face.png").unlink()
    code, err = run(tmp_path / "run2", *args, capsys=capsys)
    assert code == 4 and "no image measured" in err, err


# -- a full disk -----------------------------------------------------------------------------------------
def _limit_pages(db, extra):
    n = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {n + extra}")  # SQLite's own SQLITE_FULL, as on a full disk


def test_full_disk_while_writing_the_store_keeps_committed_rows_and_resumes(tmp_path, cache_dir, reference,
                                                                          capsys, monkeypatch):
    import bench.store.results as st

    real_commit = st.ResultStore.commit
    commits = []

    def filling_disk(self):  # the disk fills up after two images were committed
        real_commit(self)
        commits.append(1)
        if len(commits) == 2:
            _limit_pages(self.db, 0)

    out = tmp_path / "run"
    warm_cache(cache_dir)
    monkeypatch.setattr(st.ResultStore, "commit", filling_disk)
    code, err = run(out, capsys=capsys)
    assert code == 5, err
    assert str(out / "results.sqlite") in err and "no space left" in err and "Traceback" not in err
    committed = sqlite3.connect(out / "results.sqlite").execute("SELECT COUNT(*) FROM images").fetchone()[0]
    assert 0 < committed < 2 * N, "the disk must fill midway"
    monkeypatch.setattr(st.ResultStore, "commit", real_commit)  # space freed
    assert run(out, capsys=capsys)[0] == 0
    assert results(out)[:4] == reference[:4]


def test_full_disk_while_writing_the_cache_is_an_error_naming_it(tmp_path, cache_dir, reference, capsys,
                                                               monkeypatch):
    import bench.store.cache as ca

    real = ca.FeatureCache.__init__

    def small_disk(self, *a, **k):
        real(self, *a, **k)
        _limit_pages(self.db, 2)

    monkeypatch.setattr(ca.FeatureCache, "__init__", small_disk)
    out = tmp_path / "run"
    code, err = run(out, capsys=capsys)
    assert code == 5, err
    assert str(cache_dir / "features.sqlite") in err and "no space left" in err
    assert results(out)[3] == [], "a full disk is not an image's fault: never a skip"
    monkeypatch.setattr(ca.FeatureCache, "__init__", real)
    assert run(out, capsys=capsys)[0] == 0
    assert results(out)[:4] == reference[:4]


@pytest.mark.parametrize("size_kib", [24, 160])  # full before the first commit (SQLite: I/O error); midway
def test_full_disk_on_a_real_small_filesystem(tmp_path, cache_dir, reference, capsys, size_kib):
    """--out on a tmpfs of a few KiB (needs the right to mount: root in a container; else skipped)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(disk)], capture_output=True)
    if r.returncode:
        pytest.skip("cannot mount a tmpfs here (needs root); the injected SQLITE_FULL tests cover this")
    try:
        warm_cache(cache_dir)
        code, err = run(disk / "run", capsys=capsys)
        assert code == 5, err
        assert str(disk / "run" / "results.sqlite") in err and "no space left" in err and "Traceback" not in err
        subprocess.run(["mount", "-o", "remount,size=20m", str(disk)], check=True)  # space freed
        code, err = run(disk / "run", capsys=capsys)
        assert code == 0, err
        assert results(disk / "run")[:4] == reference[:4]
    finally:
        import gc

        gc.collect()  # close the store's connections before unmounting
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


# -- Ctrl-C, SIGTERM -------------------------------------------------------------------------------------
def _children(pid):
    out = []
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
        except (OSError, ValueError, IndexError):
            pass
    return out


@pytest.mark.parametrize("sig,executor", [(signal.SIGINT, "local"), (signal.SIGTERM, "processes")])
def test_signal_stops_within_seconds_and_the_same_command_resumes(tmp_path, reference, sig, executor):
    out = tmp_path / "run"
    args = [a for a in ARGS if a not in ("--executor", "local")] + ["--executor", executor, "--workers", "2",
                                                                   "--shard-size", "1"]
    env = {**os.environ, "KPDP_BENCH_CACHE": str(tmp_path / "cache")}  # cold: the run must be midway
    p = subprocess.Popen([sys.executable, "-m", "bench", *args, "--out", str(out)], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None:
            try:
                n = sqlite3.connect(out / "results.sqlite").execute("SELECT COUNT(*) FROM images").fetchone()[0]
            except sqlite3.Error:
                n = 0
            if n >= 1:
                break
            time.sleep(0.05)
        workers = _children(p.pid)
        t0 = time.time()
        p.send_signal(sig)
        _, err = p.communicate(timeout=20)
        stopped = time.time() - t0
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 128 + sig, err
    assert stopped < 10 and "interrupted" in err and "resume" in err and "Traceback" not in err
    time.sleep(0.5)
    assert not [w for w in workers if os.path.exists(f"/proc/{w}") and
                open(f"/proc/{w}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"], "workers outlived the run"
    db = sqlite3.connect(out / "results.sqlite")
    assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    assert 0 < db.execute("SELECT COUNT(*) FROM images").fetchone()[0] < 2 * N, "the signal must land midway"
    db.close()
    r = subprocess.run([sys.executable, "-m", "bench", *args, "--out", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert results(out)[:4] == reference[:4]


# -- two runs, one --out ----------------------------------------------------------------------------------
def test_two_concurrent_runs_on_one_out_stay_correct(tmp_path, reference):
    out = tmp_path / "run"
    env = {**os.environ, "KPDP_BENCH_CACHE": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-m", "bench", *ARGS, "--out", str(out)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert results(out)[:4] == reference[:4]
