import numpy as np

from bench.cache import FeatureCache, file_digest
from bench.store import ResultStore, eps_key, pack_features, unpack_features


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
