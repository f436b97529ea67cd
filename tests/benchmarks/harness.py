"""Harness efficiency, cache speed-up and peak memory, measured in one go (issue: performance).

    python -m tests.benchmarks.harness [--limit N] [--datasets lfw --root PATH --split devtest]

Runs, each as its own process with a fresh feature cache:
  1. the README's main job (kpdp, blur at ε 0.5, 1, 4, every metric that runs here);
  2. the same command again on the same --out (a resumed/finished run: everything cached);
  3. the same plus one more method (pixelate-8) on the same --out.
Prints wall times, the fraction of run 1's wall time spent inside model calls (harness
efficiency), the speed-up of run 2, run 3's extra cost against pixelate-8's own model time, and the
peak resident memory of run 1.

    python -m tests.benchmarks.harness --memory 1000,0 --methods blur --datasets lfw --root PATH --split devtest

prints the peak memory of a run over the first 1,000 images and over all of them.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(args, out, env):
    """(wall s, the run's model-call timing, this run's own peak RSS in KiB)."""
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen([sys.executable, "-m", "bench", "run", *args, "--out", str(out), "--quiet"], env=env,
                             stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)  # this child's rusage alone, not the max over all children
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode:
            err.seek(0)
            raise SystemExit(f"bench run {' '.join(args)} exited {p.returncode}:\n" + err.read()[-3000:])
    wall = time.perf_counter() - t
    meta = dict(sqlite3.connect(Path(out) / "results.sqlite").execute("SELECT key, value FROM run"))
    timing = json.loads(meta["timing"])
    ex = json.loads(meta.get("executor", '{"name": "local"}'))
    timing["workers"] = 1 if ex["name"] == "local" else ex["workers"]
    timing["executor"] = ex["name"]
    return wall, timing, usage.ru_maxrss


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--limit", type=int)
    p.add_argument("--datasets", default="lfw-sample"), p.add_argument("--root"), p.add_argument("--split")
    p.add_argument("--memory", help="instead: peak RSS of `--methods M` at these comma-separated --limit values "
                   "(e.g. 1000,0 for 1,000 images vs all), feature cache as it is")
    p.add_argument("--methods", default="blur")
    p.add_argument("--executor", default="local", help="for --memory: local measures one process holding everything")
    p.add_argument("--attackers", help="bench run's --attackers (default: its default ladder)")
    p.add_argument("--first-runs", type=int, default=0, metavar="N",
                   help="instead: N first runs, each on a cold feature cache of its own; their median wall time")
    a = p.parse_args(argv)
    if a.memory:
        return memory(a)
    base = ["--methods", "kpdp,blur", "--eps", "0.5,1,4", "--datasets", a.datasets]
    for flag, v in (("--root", a.root), ("--split", a.split), ("--limit", a.limit), ("--attackers", a.attackers)):
        if v is not None:
            base += [flag, str(v)]
    if a.first_runs:
        return first_runs(base, a.first_runs)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "KPDP_BENCH_CACHE": str(Path(tmp) / "cache"), "KPDP_ONNX_CACHE": str(Path(tmp) / "onnx")}
        out = Path(tmp) / "run"
        w1, t1, rss = run(base, out, env)
        w2, t2, _ = run(base, out, env)
        more = [*base]
        more[1] = "kpdp,blur,pixelate-8"
        w3, t3, _ = run(more, out, env)
    eff = t1["total"] / (t1["wall"] * t1["workers"])
    print(f"run 1 (first):           wall {w1:7.1f} s  in-process {t1['wall']:7.1f} s  model calls {t1['total']:7.1f} s"
          f"  ({t1['executor']}, {t1['workers']} worker(s))")
    print(f"harness efficiency:      {eff:.3f}  (model time / (in-process wall x workers); target >= 0.85)")
    print("  model seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(t1["seconds"].items(), key=lambda x: -x[1])))
    print(f"run 2 (identical):       wall {w2:7.1f} s  -> {w1 / w2:.1f}x faster (target >= 5x)")
    own = t3["seconds"].get("method:pixelate-8", 0.0) + sum(v for k, v in t3["seconds"].items() if not k.startswith("method:"))
    print(f"run 3 (+pixelate-8):     wall {w3:7.1f} s  model calls {t3['total']:.1f} s (pixelate-8's cells: {own:.1f} s)")
    print(f"peak RSS of run 1:       {rss / 1024:.0f} MiB (the driver process; workers hold their own models)")


SERIAL_PHASES = ("setup", "aggregation")  # bench.timing.phase: the driver alone, the workers idle


def first_runs(base, n):
    """The README's main command's first run, ``n`` times on cold caches: median wall, efficiency."""
    import statistics

    walls, effs, serial = [], [], []
    for k in range(n):
        with tempfile.TemporaryDirectory() as tmp:
            # a cold start: no feature cache, no exported ONNX graphs (kpdp.faces.onnx_cpu)
            wall, t, _ = run(base, Path(tmp) / "run", {**os.environ, "KPDP_BENCH_CACHE": str(Path(tmp) / "cache"),
                                                       "KPDP_ONNX_CACHE": str(Path(tmp) / "onnx")})
        walls.append(wall)
        effs.append(t["total"] / (t["wall"] * t["workers"]))
        phases = t.get("phases", {})
        stretch = max(((v, name) for name, v in phases.items() if name in SERIAL_PHASES), default=(float("nan"), "-"))
        serial.append(stretch[0] / wall)
        print(f"first run {k + 1}/{n}: wall {wall:7.1f} s  harness efficiency {effs[-1]:.3f}  longest serial stretch "
              f"{stretch[1]} {stretch[0]:.1f} s ({serial[-1]:.1%})  phases: "
              + ", ".join(f"{p} {v:.1f} s" for p, v in phases.items()) + f"  ({' '.join(base)})", flush=True)
        calls = t.get("calls", {})
        print("  model seconds (calls): " + ", ".join(f"{m} {v:.1f} ({calls.get(m, '?')})"
                                                  for m, v in sorted(t["seconds"].items(), key=lambda x: -x[1])),
              flush=True)
    print(f"median of {n}: wall {statistics.median(walls):.1f} s, harness efficiency {statistics.median(effs):.3f}, "
          f"longest serial stretch {statistics.median(serial):.1%} of the wall time")


def memory(a):
    """Peak RSS against the number of images: models dominate, features are streamed to SQLite."""
    for limit in (int(v) for v in a.memory.split(",")):
        args = ["--methods", a.methods, "--datasets", a.datasets, "--executor", a.executor]
        for flag, v in (("--root", a.root), ("--split", a.split)):
            if v is not None:
                args += [flag, v]
        if limit:
            args += ["--limit", str(limit)]
        with tempfile.TemporaryDirectory() as tmp:
            wall, t, rss = run(args, Path(tmp) / "run", dict(os.environ))
            n = sqlite3.connect(Path(tmp) / "run" / "results.sqlite").execute("SELECT COUNT(*) FROM originals").fetchone()[0]
        print(f"{n:5d} images: peak RSS {rss / 1024:7.0f} MiB, wall {wall:7.1f} s, model calls {t['total']:.1f} s")


if __name__ == "__main__":
    main()
