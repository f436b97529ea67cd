import pytest

from bench import timing
from bench.run.evaluate import ArgumentError, DatasetSpec, RunConfig, cell_line, derive_seed


def test_per_image_seeds_are_stable_and_distinct():
    a = derive_seed(0, "lfw", "kpdp", 1.0, "A/A_0001")
    assert a == derive_seed(0, "lfw", "kpdp", 1.0, "A/A_0001")
    others = {derive_seed(s, "lfw", m, e, i) for s in (0, 1) for m in ("kpdp", "dppix") for e in (1.0, 4.0)
              for i in ("A/A_0001", "A/A_0002")}
    assert len(others) == 16 and 0 <= a < 2 ** 63


def test_cells_add_the_reference_and_ignore_eps_for_methods_without_it():
    cfg = RunConfig(methods=["blur", "dppix"], eps=[0.5, 4.0], seeds=[0, 1])
    cells = [(c.method, c.eps, c.seed) for c in cfg.cells("lfw-sample")]
    assert ("original", None, 0) in cells and ("blur", None, 1) in cells and ("dppix", 4.0, 1) in cells
    assert len(cells) == 2 + 2 + 4
    notes = cfg.validate()
    assert any("does not apply to blur" in n for n in notes)


@pytest.mark.parametrize("kw,msg", [({"methods": ["x"]}, "unknown method"), ({"eps": [float("nan")]}, "ε must"),
                                    ({"datasets": [DatasetSpec("nope")]}, "unknown data set"),
                                    ({"detectors": ["yolo"]}, "unknown detector")])
def test_validation_errors(kw, msg):
    cfg = RunConfig(**{"methods": ["blur"], **kw})
    with pytest.raises(ArgumentError, match=msg):
        cfg.validate()


def test_model_timer_and_cell_line():
    timing.reset()
    with timing.model_call("recognizer:dlib"):
        pass
    with timing.phase("aggregation"):
        pass
    snap = timing.snapshot()
    assert snap["calls"] == {"recognizer:dlib": 1} and snap["total"] >= 0
    assert list(snap["phases"]) == ["aggregation"]
    from bench.run.evaluate import Cell

    line = cell_line(Cell("lfw", "kpdp", 1.0, 0), [("reid_rank1", "max", 0.1, 10), ("sec_per_image", "", 0.5, 10)])
    assert line == "lfw kpdp eps=1 seed=0: reid_rank1[max]=0.100 0.50s/img"


def test_the_store_remembers_every_method_run_into_it(tmp_path):
    """A second command into the same folder adds its methods to the run's record: `bench attack`
    and provenance find the first command's cells by it."""
    import json
    import sqlite3

    from bench import RunConfig, evaluate

    out = tmp_path / "run"
    for method in ("blur", "pixelate-8"):
        evaluate(RunConfig(methods=[method], limit=2, out=str(out), quiet=True, metrics=["background"],
                           executor="local"), argv=["test"])
    meta = dict(sqlite3.connect(out / "results.sqlite").execute("SELECT key, value FROM run"))
    assert {v["spec"] for v in json.loads(meta["methods"]).values()} == {"original", "blur", "pixelate-8"}
