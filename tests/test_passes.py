"""What the passes after the grid share: the run's calibration and the cells they attack."""
from bench.run.passes import cells_to_attack, run_calibration


def test_the_runs_thresholds_are_reused_per_recognizer():
    meta = {"threshold:lfw:dlib": {"value": 0.61}, "threshold:celeba:dlib": {"value": 0.5}}
    assert run_calibration(meta, "lfw", ["dlib", "facenet-casia"]) == {("threshold", "dlib"): 0.61}


def test_reference_cells_come_first_once_then_the_selected_ones():
    methods = [("original", None), ("blur", None), ("kpdp", 1.0), ("kpdp", 4.0)]
    todo = cells_to_attack(methods, run_seeds=[0, 1], seeds=[0, 1], selected=lambda m, e: m == "kpdp" and e == 1.0)
    assert todo == [("original", None, 0), ("blur", None, 0), ("kpdp", 1.0, 0), ("kpdp", 1.0, 1)]
    assert cells_to_attack(methods, [0], [0], lambda m, e: True).count(("blur", None, 0)) == 1
