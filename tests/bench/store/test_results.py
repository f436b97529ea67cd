"""bench.store.results: the reads that other stages ask of a run's store (nothing outside the store
runs SQL on it), and the read-only reader a report and a stopped run's message use."""
import hashlib
import json
import sqlite3

import numpy as np
import pytest

from bench.aggregate.fingerprint import data_set_digest
from bench.store.results import (
    STORE_FILE,
    ResultStore,
    SQLiteError,
    StoreDamagedError,
    StoreReader,
    committed_counts,
    damage_behind,
    full_read_finds_damage,
)


def _face(i):
    return {"faces": [{"box": [0, 0, 10 + i, 10 + i]}], "primary": 0}


def _run(tmp_path, n=4):
    """A small store: n originals of data set 'd'; blur at ε=None measured on all but the last (which
    failed), at seeds 0 and 1; kpdp at ε=1 on the first two, seed 0; one skip."""
    out = tmp_path / "run"
    s = ResultStore(out)
    s.set_meta(seeds=[0, 1], executor={"name": "local"})
    for i in reversed(range(n)):  # written out of order: reads must sort
        s.put_original("d", f"img{i}", f"id{i % 2}", f"/x/img{i}.png", f"dg{i}", _face(i))
    for seed in (1, 0):
        for i in range(n):
            ok = i < n - 1
            s.put_image("d", "blur", None, seed, f"img{i}", "ok" if ok else "failed", "" if ok else "boom",
                        {"digest": f"blur{seed}{i}"}, {"emb:x": np.full(3, i, float)} if ok else None)
    for i in range(2):
        s.put_image("d", "kpdp", 1.0, 0, f"img{i}", "ok", "", {"digest": f"kpdp{i}"}, {"emb:x": np.ones(2)})
    s.skip("d", "img9", "/x/img9.png", "original", "no face")
    s.skip("d", "img8", "/x/img8.png", "original-error", "raised")
    s.put_aggregates("d", "blur", None, 0, [("reid_rank1", "dlib", 0.5, 3, 0.1, 0.9, "ignorant", True),
                                            ("reid_rank1", "dlib", float("nan"), 3, None, None, "lazy", False),
                                            ("fid", "inception", 12.0, 3)])
    s.close()
    return out


def _files(out):
    return {p.name: p.read_bytes() for p in out.iterdir()}


# -- the read-only reader ---------------------------------------------------------------------------
def test_reader_reads_what_was_written_in_order(tmp_path):
    out = _run(tmp_path)
    with StoreReader(out) as r:
        assert r.run_value("seeds", [0]) == [0, 1] and r.run_value("executor", {}) == {"name": "local"}
        assert r.run_value("missing", "default") == "default"
        assert r.measured_cells(0) == [("d", "blur", ""), ("d", "kpdp", "1.0")]
        assert r.measured_cells(1) == [("d", "blur", "")] and r.measured_cells(7) == []
        assert [row[1] for row in r.originals()] == ["img0", "img1", "img2", "img3"]
        assert r.originals()[0] == ("d", "img0", "/x/img0.png", json.dumps(_face(0)))
        assert r.measured_record("d", "kpdp", "1.0", 0, "img1") == {"digest": "kpdp1"}
        assert r.measured_record("d", "blur", "", 1, "img2") == {"digest": "blur12"}
        assert r.measured_record("d", "blur", "", 0, "img3") is None  # failed: not measured
        assert r.measured_record("d", "kpdp", "1.0", 1, "img0") is None  # no such seed
        assert r.committed_counts() == (4, 2 * 3 + 2)


def test_reader_never_writes_into_the_run(tmp_path):
    out = _run(tmp_path)
    before = _files(out)
    with StoreReader(out) as r:
        r.run_value("seeds"), r.measured_cells(0), r.originals(), r.committed_counts(), r.finds_damage()
        for sql in ("INSERT INTO run VALUES ('x', '1')", "CREATE TABLE t (a)", "DELETE FROM images"):
            with pytest.raises(SQLiteError, match="readonly"):
                r.db.execute(sql)
    after = _files(out)
    # SQLite's WAL mode leaves its index (-shm) and an empty log (-wal) behind even a read-only
    # connection: the run's data, the file itself and any log of changes, stays as it was
    assert after[STORE_FILE] == before[STORE_FILE] and after.get(STORE_FILE + "-wal", b"") == b""
    assert set(after) - set(before) <= {STORE_FILE + "-wal", STORE_FILE + "-shm"}


def test_reader_of_a_missing_store_raises_and_creates_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SQLiteError):
        StoreReader(tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []
    assert committed_counts(tmp_path / "empty") is None and committed_counts(tmp_path / "nowhere") is None
    assert not (tmp_path / "nowhere").exists()


def test_committed_counts_match_what_was_written(tmp_path):
    out = _run(tmp_path, n=5)
    assert committed_counts(out) == (5, 2 * 4 + 2)
    s = ResultStore(out)
    s.put_image("d", "mask", None, 0, "img0", "ok", "", {}, None)
    s.put_image("d", "mask", None, 0, "img1", "failed", "boom", {}, None)  # failed: not counted
    s.commit()
    assert committed_counts(out) == (5, 2 * 4 + 2 + 1)  # committed rows, read by another connection
    s.close()


def test_stopped_runs_message_names_the_counts(tmp_path):
    from bench.cli.run import _committed

    out = _run(tmp_path)
    assert _committed(out) == f"4 originals and 8 anonymised images are committed in {out}/results.sqlite"
    assert _committed(tmp_path / "nowhere") == f"what was committed is in {tmp_path / 'nowhere'}/results.sqlite"


# -- a full read finds damage -------------------------------------------------------------------------
def test_a_sound_store_has_no_damage(tmp_path):
    out = _run(tmp_path)
    assert not full_read_finds_damage(out)
    assert not full_read_finds_damage(tmp_path / "nowhere")  # no store: nothing to salvage


def test_a_record_that_does_not_read_back_is_damage(tmp_path):
    out = _run(tmp_path)
    db = sqlite3.connect(out / STORE_FILE)
    with db:
        db.execute("UPDATE images SET record='{\"digest\": ' WHERE image_id='img1' AND method='kpdp'")
    db.close()
    assert full_read_finds_damage(out)  # SQLite's own check is fine: only reading the row finds it


def test_features_failing_their_crc_are_damage(tmp_path):
    out = _run(tmp_path)
    db = sqlite3.connect(out / STORE_FILE)
    blob = bytearray(db.execute("SELECT features FROM images WHERE image_id='img0' AND method='kpdp'").fetchone()[0])
    blob[len(blob) // 3] ^= 0xFF
    with db:
        db.execute("UPDATE images SET features=? WHERE image_id='img0' AND method='kpdp'", (bytes(blob),))
    db.close()
    assert full_read_finds_damage(out)


def test_damaged_pages_are_damage(tmp_path):
    out = tmp_path / "run"
    s = ResultStore(out)
    for i in range(400):
        s.put_image("d", "blur", None, 0, f"img{i:04d}", "ok", "", {"digest": "x" * 200}, {"e": np.arange(64.0)})
    s.close()
    path = out / STORE_FILE
    size = path.stat().st_size
    assert size > 16 * 4096
    with open(path, "r+b") as f:
        f.seek((size // 2) // 4096 * 4096)
        f.write(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert full_read_finds_damage(out)
    path.write_bytes(b"not a database at all" * 300)
    assert full_read_finds_damage(out)


def test_damage_behind_an_error_of_a_run(tmp_path):
    out = _run(tmp_path)
    bad_json = json.JSONDecodeError("Expecting value", "{", 1)
    malformed = sqlite3.DatabaseError("database disk image is malformed")
    assert damage_behind(out, bad_json) is None and damage_behind(out, malformed) is None  # the store is sound
    db = sqlite3.connect(out / STORE_FILE)
    with db:
        db.execute("UPDATE originals SET record='{' WHERE image_id='img2'")
    db.close()
    found = damage_behind(out, bad_json)
    assert isinstance(found, StoreDamagedError) and found.path == out / STORE_FILE
    assert str(found) == f"the result store {out}/{STORE_FILE} has rows that do not read back ({bad_json})"
    assert found.detail == f"rows that do not read back: {bad_json}"
    assert isinstance(damage_behind(out, malformed), StoreDamagedError)
    # not about damage: passed on as it is
    assert damage_behind(out, sqlite3.OperationalError("database is locked")) is None
    assert damage_behind(out, ValueError("bad argument")) is None


# -- what aggregation and its fingerprint read --------------------------------------------------------
def test_cell_aggregates_and_stored_attackers(tmp_path):
    out = _run(tmp_path)
    s = ResultStore(out)
    rows = s.cell_aggregates("d", "blur", None, 0)
    assert [(r.metric, r.attacker) for r in rows] == [("fid", ""), ("reid_rank1", "ignorant"), ("reid_rank1", "lazy")]
    fid, ignorant, lazy = rows
    assert (ignorant.value, ignorant.n, ignorant.ci_low, ignorant.ci_high, ignorant.valid) == (0.5, 3, 0.1, 0.9, True)
    assert np.isnan(lazy.value) and np.isnan(lazy.ci_low) and np.isnan(fid.ci_high) and lazy.valid is False
    assert s.cell_aggregates("d", "blur", None, 1) == [] and s.cell_aggregates("d", "kpdp", 1.0, 0) == []
    assert s.stored_attackers("d", "blur", None, 0) == {"", "ignorant", "lazy"}
    assert s.stored_attackers("d", "blur", 1.0, 0) == set()
    assert s.attackers_with("d", "reid_rank1") == {"ignorant", "lazy"} and s.attackers_with("d", "fid") == {""}
    assert s.attackers_with("other", "reid_rank1") == set()
    s.close()


def test_rows_as_stored_are_the_bytes_in_order(tmp_path):
    out = _run(tmp_path)
    s = ResultStore(out)
    assert [r[0] for r in s.originals_as_stored("d")] == ["img0", "img1", "img2", "img3"]
    assert next(s.originals_as_stored("d")) == ("img0", "dg0", json.dumps(_face(0)))
    assert list(s.skip_reasons_as_stored("d")) == [("img8", "original-error", "raised"),
                                                   ("img9", "original", "no face")]
    blur = list(s.images_as_stored("d", "blur", None))
    assert [(r[0], r[1]) for r in blur] == [(seed, f"img{i}") for seed in (0, 1) for i in range(4)]
    assert blur[3][2:] == ("failed", json.dumps({"digest": "blur03"}), None)
    assert isinstance(blur[0][4], bytes) and blur[0][3] == json.dumps({"digest": "blur00"})
    assert [r[1] for r in s.images_as_stored("d", "kpdp", 1.0)] == ["img0", "img1"]
    assert list(s.images_as_stored("d", "kpdp", 4.0)) == [] and list(s.originals_as_stored("e")) == []
    s.close()


def test_data_set_digest_is_unchanged_by_the_move_into_the_store(tmp_path):
    """The digest that earlier runs recorded (cells keep their rows when it matches): computed here
    with the SQL that bench.aggregate.fingerprint ran itself before it asked the store."""
    out = _run(tmp_path)
    s = ResultStore(out)
    s.put_image("d", "original", None, 0, "img0", "ok", "", {"digest": "o0"}, {"emb:x": np.ones(2)})
    s.commit()
    db = sqlite3.connect(out / STORE_FILE)
    h = hashlib.sha256(b"c0ffee")
    for seed, image_id, status, record, features in db.execute(
            "SELECT seed, image_id, status, record, features FROM images "
            "WHERE dataset=? AND method=? AND eps=? ORDER BY seed, image_id", ("d", "original", "")):
        h.update(repr((seed, image_id, status, record)).encode())
        h.update(features or b"")
    for row in db.execute("SELECT image_id, digest, record FROM originals WHERE dataset=? ORDER BY image_id", ("d",)):
        h.update(repr(row).encode())
    for row in db.execute("SELECT image_id, stage, reason FROM skipped WHERE dataset=? ORDER BY image_id, stage",
                          ("d",)):
        h.update(repr(row).encode())
    db.close()
    assert data_set_digest(s, ["d"], "c0ffee") == h.hexdigest()
    s.close()


def test_original_samples_are_one_data_sets_originals_in_image_order(tmp_path):
    s = ResultStore(_run(tmp_path))
    rows = list(s.original_samples("d"))
    assert [r[0] for r in rows] == ["img0", "img1", "img2", "img3"]  # written in reverse, read sorted
    assert rows[1][1:3] == ("id1", "/x/img1.png") and json.loads(rows[1][3]) == _face(1)
    assert list(s.original_samples("other")) == []
    s.close()


def test_attack_outcomes_read_back_per_attacker_and_recognizer(tmp_path):
    store = ResultStore(tmp_path)
    hits = {"dlib": {"reid_rank1": np.array([True, False, True])}, "facenet-casia": {"reid_rank1": np.ones(3, bool)}}
    store.put_attack_outcomes("lfw", "kpdp", 1.0, 0, "recon-learned", hits)
    store.put_attack_outcomes("lfw", "kpdp", 1.0, 0, "recon-learned", hits)  # a rerun replaces, never duplicates
    got = store.attack_outcomes("lfw", "kpdp", 1.0, 0)
    assert list(got) == ["recon-learned"] and sorted(got["recon-learned"]) == ["dlib", "facenet-casia"]
    assert got["recon-learned"]["dlib"]["reid_rank1"].tolist() == [True, False, True]
    assert store.attack_outcomes("lfw", "kpdp", 4.0, 0) == {}
    store.close()
