import numpy as np
import pytest

from kpdp import frozen


def test_round_trip_and_refusals(tmp_path):
    arrays = {"a": np.arange(6.0).reshape(2, 3), "b": np.array([1, 2], np.int32)}
    digest = frozen.save(tmp_path / "x.safetensors", arrays, {"note": 1}, "7")
    back, meta = frozen.load(tmp_path / "x.safetensors", ("a", "b"), "7", "missing")
    assert back["b"].dtype == np.float64 and np.array_equal(back["a"], arrays["a"])
    assert meta["note"] == "1" and meta["sha256_arrays"] == digest == frozen.arrays_digest(back)
    with pytest.raises(ValueError, match="format version 7, expected 8"):
        frozen.load(tmp_path / "x.safetensors", ("a", "b"), "8", "missing")
    with pytest.raises(FileNotFoundError, match="nothing here"):
        frozen.load(tmp_path / "y.safetensors", ("a",), "7", "nothing here")
    # the digest depends on the order of the arrays, so the names' order is part of the format
    assert frozen.arrays_digest({"b": arrays["b"], "a": arrays["a"]}) != digest
