import numpy as np

from bench.store.cache import FeatureCache, file_digest
from bench.store.results import ResultStore, eps_key, pack_features, unpack_features


def test_store_round_trip_and_idempotent_inserts(tmp_path):
    s = ResultStore(tmp_path / "run")
    s.put_image("d", "m", 1.0, 0, "img1", "ok", "", {"a": 1}, {"emb:x": np.arange(3.0)})
    s.put_image("d", "m", 1.0, 0, "img1", "ok", "", {"a": 2}, {"emb:x": np.arange(3.0)})  # rerun: replaces
    s.commit()
    rows = list(s.images("d", "m", 1.0, 0))
    assert len(rows) == 1 and rows[0][3] == {"a": 2} and rows[0][4]["emb:x"].tolist() == [0, 1, 2]
    assert s.done_images("d", "m", 1.0, 0) == {"img1"} and s.done_images("d", "m", 4.0, 0) == set()
    s.put_aggregates("d", "m", 1.0, 0, [("reid_rank1", "max", 0.5, 10)])
    s.put_aggregates("d", "m", 1.0, 0, [("reid_rank1", "max", 0.25, 10)])
    assert s.aggregates().value.tolist() == [0.25] and s.cell_finished("d", "m", 1.0, 0)
    s.set_meta(seeds=[0, 1])
    assert s.meta()["seeds"] == [0, 1]
    assert eps_key(None) == "" and eps_key(float("inf")) == "inf" and eps_key(1) == "1.0"


def test_features_do_not_pickle():
    blob = pack_features({"a": np.ones(4)})
    assert unpack_features(blob)["a"].dtype == np.float32 and unpack_features(None) == {}


def test_cache_keys_by_content(tmp_path):
    c = FeatureCache(tmp_path / "c.sqlite")
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    k = FeatureCache.key("emb", "v1", file_digest(f))
    assert c.get_array(k) is None
    c.put_array(k, np.array([1.0, 2.0]))
    c.put_json(k + "|j", {"x": 1})
    assert c.get_array(k).tolist() == [1.0, 2.0] and c.get_json(k + "|j") == {"x": 1} and len(c) == 2
    f.write_bytes(b"abd")
    assert FeatureCache.key("emb", "v1", file_digest(f)) != k


def test_cache_entry_failing_its_checksum_is_dropped_not_returned(tmp_path, capsys):
    import sqlite3

    c = FeatureCache(tmp_path / "c.sqlite")
    c.put_array("emb|v1|" + "a" * 40, np.arange(4.0))
    db = sqlite3.connect(tmp_path / "c.sqlite")
    blob = bytearray(db.execute("SELECT value FROM cache").fetchone()[0])
    blob[-1] ^= 0xFF  # one flipped bit pattern in the data: still a valid .npy, a wrong value
    db.execute("UPDATE cache SET value = ?", (bytes(blob),))
    db.commit()
    assert c.get_array("emb|v1|" + "a" * 40) is None and len(c) == 0
    assert "fails its checksum" in capsys.readouterr().err


def test_cache_key_kind_and_version():
    from bench.store.cache import split_key

    d = "0123456789abcdef" * 3
    assert split_key(f"original:faces|finder=a|b=c|{d}|emb:dlib") == ("original:faces", "finder=a|b=c")
    assert split_key(f"verify-embedding|r1|f1|{d}") == ("verify-embedding", "r1|f1")


def test_salvage_keeps_rows_that_read_back_whole(tmp_path):
    import sqlite3

    from bench.store.results import salvage

    s = ResultStore(tmp_path / "run")
    for i in range(3):
        s.put_image("d", "m", None, 0, f"img{i}", "ok", "", {"a": i}, {"emb:x": np.arange(3.0)})
    s.close()
    db = sqlite3.connect(tmp_path / "run" / "results.sqlite")
    db.execute("UPDATE images SET record = '{\"a\": 1' WHERE image_id = 'img1'")  # damaged text
    db.commit()
    db.close()
    report = salvage(tmp_path / "run", log=lambda m: None)
    assert report["images"] == (2, 1)
    s = ResultStore(tmp_path / "run")
    assert s.done_images("d", "m", None, 0) == {"img0", "img2"}
    assert list((tmp_path / "run").glob("results.sqlite.damaged-*"))
