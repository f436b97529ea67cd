"""tests/benchmarks/grid_bound.py: the stage timings and the wall-time bound composed from them."""
import json
import sqlite3

from tests.benchmarks import grid_bound


def test_measure_times_the_asked_stages_and_records_what_failed(tmp_path, capsys):
    import cv2
    import torch

    out = tmp_path / "here.json"
    threads = torch.get_num_threads(), cv2.getNumThreads()
    try:  # measure() sets one thread, as a pool worker runs: give the later tests theirs back
        grid_bound.main(["measure", "--n", "2", "--cpu-only", "--out", str(out),
                         "--stages", "expression:fer-mini-xception,detector:dlib-hog,detector:no-such-detector"])
    finally:
        torch.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])
    res = json.loads(out.read_text())
    assert set(res["stages"]) == {"expression:fer-mini-xception@cpu", "detector:dlib-hog@cpu",
                                  "detector:no-such-detector@cpu"}
    assert res["stages"]["detector:dlib-hog@cpu"]["per_image_s"] > 0
    assert "no-such-detector" in res["stages"]["detector:no-such-detector@cpu"]["error"]
    assert res["n"] == 2 and res["cpu_threads_per_worker"] == 1


def _run_with_timing(path, seconds):
    path.mkdir()
    db = sqlite3.connect(path / "results.sqlite")
    db.execute("CREATE TABLE run (key TEXT PRIMARY KEY, value TEXT)")
    db.execute("INSERT INTO run VALUES ('timing', ?)", (json.dumps({"seconds": seconds, "wall": 100.0}),))
    db.commit()
    return path


def test_the_bound_is_the_slower_side_and_stages_not_timed_there_are_scaled(tmp_path):
    here = {"stages": {"recognizer:dlib@cpu": {"per_image_s": 0.08}, "inception@cpu": {"per_image_s": 0.2}}}
    there = {"cuda": "GPU", "stages": {"inception@cpu": {"per_image_s": 0.1},
                                       "inception@cuda": {"per_image_s": 0.01, "batched_per_image_s": 0.001}}}
    (tmp_path / "here.json").write_text(json.dumps(here))
    (tmp_path / "there.json").write_text(json.dumps(there))
    run = _run_with_timing(tmp_path / "run", {"recognizer:dlib": 800.0, "inception": 2000.0})
    b = grid_bound.compose(type("A", (), {"run": run, "here": tmp_path / "here.json", "there": tmp_path / "there.json",
                                          "workers": 16, "cpu_stages": None})())
    # dlib was not timed there: scaled by the one stage timed on both CPUs (0.1 / 0.2)
    assert b["stages"]["recognizer:dlib"] == {"here_s": 800.0, "cpu_core_s": 400.0, "scaled": True}
    assert b["gpu_s"] == 100.0 and b["gpu_batched_s"] == 10.0
    assert b["wall_s"] == 100.0 and b["bound_by"] == "gpu"  # 400 core-s / 16 = 25 s < the GPU's 100 s
    b8 = grid_bound.bound({"seconds": {"recognizer:dlib": 8000.0, "inception": 2000.0}}, here, there, workers=8)
    assert b8["bound_by"] == "cpu" and b8["wall_s"] == 500.0


def test_timed_under_a_pool_s_load_the_wall_is_all_stage_seconds_over_the_workers():
    here = {"stages": {"a@cpu": {"per_image_s": 1.0}, "g@cpu": {"per_image_s": 1.0}}}
    there = {"parallel": 4, "stages": {"a@cpu": {"per_image_s": 2.0}, "g@cpu": {"per_image_s": 2.0},
                                       "g@cuda": {"per_image_s": 0.5}}}
    b = grid_bound.bound({"seconds": {"a": 100.0, "g": 100.0}}, here, there, workers=16)
    assert b["workers"] == 4 and b["cpu_core_s"] == 200.0 and b["gpu_s"] == 50.0
    assert b["wall_s"] == 62.5 and b["bound_by"] == "cpu"
    kept = grid_bound.bound({"seconds": {"a": 100.0, "g": 100.0}}, here, there, workers=16, on_cpu=("g",))
    assert kept["gpu_s"] == 0.0 and kept["cpu_core_s"] == 400.0 and kept["wall_s"] == 100.0  # 400 core-s over the 4 timed workers
