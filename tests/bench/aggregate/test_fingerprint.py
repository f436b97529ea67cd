"""bench.aggregate.fingerprint: a later `bench run` into a store keeps the rows of cells it did not change."""
import sqlite3

import pytest

from bench import RunConfig, evaluate

COMMON = dict(recognizers=["dlib"], detectors=["dlib-hog"], metrics=["reid"], attackers=["ignorant", "lazy"],
              executor="local", quiet=True)


def _add_foreign_row(out):
    """A row as `bench attack semi-finetune` adds it: only that attacker's own run can compute it."""
    db = sqlite3.connect(out / "results.sqlite")
    with db:
        db.execute("INSERT INTO aggregates (dataset, method, eps, seed, metric, backend, value, n, attacker, valid) "
                   "VALUES ('lfw-sample', 'blur', '', 0, 'reid_rank1', 'facenet-torch', 0.5, 6, 'semi-finetune', 1)")
    db.close()


def _foreign_rows(out) -> int:
    db = sqlite3.connect(out / "results.sqlite")
    try:
        return db.execute("SELECT count(*) FROM aggregates WHERE attacker='semi-finetune'").fetchone()[0]
    finally:
        db.close()


@pytest.fixture
def clean_commit(monkeypatch):
    """Runs as from a clean checkout (the tests' own checkout may be dirty or clean)."""
    import bench.store.provenance

    monkeypatch.setattr(bench.store.provenance, "code_version", lambda: "c0ffee")
    return monkeypatch


def test_a_run_adding_a_method_keeps_the_unchanged_cells_rows(tmp_path, clean_commit):
    out = tmp_path / "run"
    evaluate(RunConfig(methods=["blur"], limit=6, out=str(out), **COMMON), argv=["first"])
    _add_foreign_row(out)
    lines = []
    df = evaluate(RunConfig(methods=["blur", "mask"], limit=6, out=str(out), **{**COMMON, "quiet": False}),
                  argv=["second"], log=lines.append)
    kept = [x for x in lines if "stored rows kept" in x]
    assert any(x.startswith("lfw-sample blur") for x in kept) and not any(" mask " in x for x in kept), lines
    assert _foreign_rows(out) == 1 and "semi-finetune" in set(df.attacker)
    assert "mask" in set(df.method)


@pytest.mark.parametrize("change", ["more images", "dirty code", "--reaggregate", "other attackers"])
def test_a_changed_input_recomputes_the_cell(tmp_path, clean_commit, change):
    out = tmp_path / "run"
    evaluate(RunConfig(methods=["blur"], limit=6, out=str(out), **COMMON), argv=["first"])
    _add_foreign_row(out)
    kw = dict(methods=["blur"], limit=6, out=str(out), **COMMON)
    if change == "more images":
        kw["limit"] = 7
    elif change == "dirty code":
        import bench.store.provenance

        clean_commit.setattr(bench.store.provenance, "code_version", lambda: "c0ffee+dirty")
    elif change == "--reaggregate":
        kw["reaggregate"] = True
    else:
        kw["attackers"] = ["ignorant"]
    lines = []
    evaluate(RunConfig(**{**kw, "quiet": False}), argv=["second"], log=lines.append)
    assert not any("stored rows kept" in x for x in lines), lines
    assert _foreign_rows(out) == 0
    assert any(x.startswith("warning:") and "semi-finetune" in x for x in lines)  # and the loss is named


def test_the_fingerprint_follows_every_record_of_the_cell_and_of_the_originals(tmp_path, clean_commit):
    from bench.aggregate.fingerprint import cell_fingerprint, data_set_digest
    from bench.run.evaluate import Cell
    from bench.store.results import ROLES, ResultStore, store_datasets

    out = tmp_path / "run"
    cfg = RunConfig(methods=["blur"], limit=6, out=str(out), **COMMON)
    evaluate(cfg, argv=["first"])
    store = ResultStore(out)
    cell = Cell("lfw-sample", "blur", None, 0)
    names = store_datasets(cell.dataset)
    assert names == [Cell(cell.dataset, cell.method, cell.eps, cell.seed, r).store_dataset for r in ROLES]
    ids = [i for (i,) in store.db.execute("SELECT image_id FROM originals WHERE dataset='lfw-sample'")]

    def fp():
        return cell_fingerprint(store, cell, cfg, names, ids, {}, data_set_digest(store, names, "c0ffee"))

    first = fp()
    assert first == fp() and len(first) == 64
    with store.db:
        store.db.execute("UPDATE images SET status='failed' WHERE method='blur' AND image_id=?", (ids[0],))
    assert fp() != first
    with store.db:
        store.db.execute("UPDATE images SET status='ok' WHERE method='blur' AND image_id=?", (ids[0],))
    assert fp() == first
    with store.db:
        store.db.execute("DELETE FROM images WHERE method='original' AND image_id=?", (ids[1],))
    assert fp() != first
    assert data_set_digest(store, names, "c0ffee+dirty") is None
    assert cell_fingerprint(store, cell, cfg, names, ids, {}, None) is None
    store.close()
