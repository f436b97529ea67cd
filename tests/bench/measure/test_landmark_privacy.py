import numpy as np

from bench.measure.landmark_privacy import chance_level, landmark_identification, majority_level
from kpdp import landmark_cache as lc


def test_chance_levels():
    ids = np.array(["a", "a", "b", "b", "b", "c"])
    assert chance_level(ids) == np.mean([1 / 5, 1 / 5, 2 / 5, 2 / 5, 2 / 5])
    assert majority_level(ids) == 3 / 5


def test_identification_falls_towards_chance_as_eps_falls(sample_landmarks):
    lm, ids = sample_landmarks["landmarks"], sample_landmarks["identity"]
    for post in ("clamp", "sample"):
        rows = {r["eps"]: r for r in landmark_identification(lm, ids, [0.5, 4, float("inf")], postprocess=post,
                                                              parts=("coords",))}
        assert rows[float("inf")]["rank1"] > 3 * chance_level(ids)
        assert rows[0.5]["rank1"] < rows[float("inf")]["rank1"] and rows[0.5]["rank1"] < 2 * chance_level(ids) + 0.02
        assert 0 < rows[0.5]["hi"] - rows[0.5]["lo"] < 0.1 and rows[0.5]["n"] > 100


def test_every_part_is_measured_and_the_kept_residual_leaks_less(sample_landmarks):
    lm, ids = sample_landmarks["landmarks"], sample_landmarks["identity"]
    rows = {(r["residual"], r["part"]): r["rank1"] for res in ("full", "expression", "none")
            for r in landmark_identification(lm, ids, [1.0], residual=res)}
    assert {p for _, p in rows} == {"released", "coords", "residual", "pose"}
    assert rows[("full", "residual")] > 3 * chance_level(ids)
    assert rows[("expression", "residual")] < 0.5 * rows[("full", "residual")]
    assert np.isnan(rows[("none", "residual")])  # nothing released: no rate, not a tie-breaking artefact
    assert rows[("expression", "released")] < rows[("full", "released")]


def test_landmark_cache_round_trip(tmp_path, sample):
    from kpdp.datasets import get_dataset

    arrays = lc.extract_landmarks(get_dataset("lfw-sample"), shard=(0, 64), progress=False)
    assert len(arrays["image_id"]) == 4 and arrays["landmarks"].shape == (4, 68, 2)
    lc.save(tmp_path / "l.npz", arrays)
    back = lc.merge([lc.load(tmp_path / "l.npz")])
    assert back["image_id"].tolist() == sorted(arrays["image_id"].tolist())


def test_cli_prints_the_noise_against_the_spread_of_people(tmp_path, sample_landmarks, capsys):
    from bench.cli.main import main

    arrays = {k: sample_landmarks[k] for k in ("image_id", "identity", "box", "landmarks")}
    lc.save(tmp_path / "l.npz", {**arrays, "failed": np.array([], dtype=str), "finder": np.array("sample")})
    assert main(["landmark-privacy", "--landmarks", str(tmp_path / "l.npz"), "--eps", "64,inf",
                 "--residual", "expression"]) == 0
    out = capsys.readouterr().out
    assert "std over the training photos' spread (median of 16): ε 64: 1.86, ε inf: 0.00" in out
    assert out.count("\n64 ") == 4 and out.count("\ninf ") == 4  # every part at both ε
