"""The attacker ladder: registry, the semi-linear map, outcomes on shared probes, the sanity check
(a broken attacker must never read as privacy), and the store's attacker column."""
import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from bench.attackers import Attacker, TrainingSet, available, default_attackers, get_attacker, register_attacker
from bench.attackers.outcomes import attack
from bench.attackers.semi_linear import LinearMap, SemiLinear, choose_map, identity_folds, rank1_within
from bench.metrics.registry import Row
from tests.conftest import LFW_ROOT, SHARED, needs_lfw


def test_registry_lists_the_ladder_and_answers_unknown_names():
    assert available()[:5] == ["ignorant", "lazy", "semi-linear", "semi-wccn", "semi-lda"]
    assert set(default_attackers()) >= {"ignorant", "lazy", "semi-linear", "semi-wccn", "semi-lda"}
    with pytest.raises(KeyError, match="unknown attacker 'oracle'; valid: ignorant, lazy, semi-linear"):
        get_attacker("oracle")
    with pytest.raises(ValueError, match="gallery"):
        register_attacker(type("Bad", (Attacker,), {"name": "bad", "gallery": "somewhere"}))


def _people(n_people=40, per=4, dim=32, nuisance=6.0, seed=0):
    """Identity lives in a few dimensions; a strong per-image nuisance in others (what a method's
    artefacts add): a learned map can suppress it, a raw cosine cannot."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=(n_people, dim)) * np.r_[np.ones(4), np.zeros(dim - 4)]
    ids = np.repeat(np.arange(n_people), per).astype(str)
    x = centre[np.repeat(np.arange(n_people), per)] + 0.3 * rng.normal(size=(n_people * per, dim))
    x[:, 4:] += nuisance * rng.normal(size=(n_people * per, dim - 4))
    return x, ids


def test_semi_linear_learns_a_map_that_beats_raw_cosine_on_held_out_people():
    x, ids = _people()
    kind, scores = choose_map(x, ids, seed=0)
    assert kind in ("wccn", "lda") and scores[kind] > scores["none"] + 0.2
    xt, it = _people(seed=1)  # other people
    a = SemiLinear().fit(TrainingSet(x, ids))
    assert rank1_within(a.project(xt), it) > rank1_within(LinearMap("none").fit(xt, it)(xt), it) + 0.2


def test_fixed_map_attackers_keep_their_map_where_semi_linears_held_out_choice_rejects_it():
    """semi-linear's held-out folds can reject the map that re-identifies most on the evaluation
    gallery; semi-wccn and semi-lda always apply theirs, so the strongest attack still sees it."""
    x, ids = _people(nuisance=0.0)  # nothing for a map to remove: raw cosine ties the maps, and wins ties
    assert SemiLinear().fit(TrainingSet(x, ids)).info["map"] == "none"
    for name, kind in (("semi-wccn", "wccn"), ("semi-lda", "lda")):
        a = get_attacker(name)().fit(TrainingSet(x, ids))
        assert a.info["map"] == kind and "heldout_rank1" not in a.info
        assert a.gallery == "anonymised" and a.trains
        np.testing.assert_allclose(a.project(x), LinearMap(kind).fit(x, ids)(x))


def test_semi_linear_keeps_raw_cosine_without_enough_training_people():
    x, ids = _people(n_people=5)
    a = SemiLinear().fit(TrainingSet(x, ids))
    assert a.info["map"] == "none" and "fewer than" in a.info["reason"]


def test_identity_folds_never_split_a_person():
    ids = np.repeat(np.arange(30), 3).astype(str)
    f = identity_folds(ids, 2, seed=3)
    assert all(len(set(f[ids == i])) == 1 for i in np.unique(ids)) and set(f) == {0, 1}


class _Cell:
    """The part of bench.aggregate.cells.CellData that attackers read."""

    def __init__(self, gallery, probes, anonymised, ids, train=None, recognizers=("r",)):
        self.gallery_identities = np.asarray(ids)
        self.gallery_feats = {"emb:r": gallery}
        self._probes, self._anon, self._train = probes, anonymised, train
        self.probe_index = np.arange(len(ids))
        self.recognizers = list(recognizers)
        self.shared = {}

    @property
    def probe_identities(self):
        return self.gallery_identities[self.probe_index]

    def probe_features(self, key):
        return self._probes

    def anonymised_gallery(self, key):
        present = ~np.all(self._anon == 0, axis=1)
        return self._anon, present

    def training_set(self, key):
        return self._train

    def verification_threshold(self, rec):
        return 0.5

    def memo(self, kind, key, compute):
        return self.shared.setdefault((kind, key), compute())


def test_lazy_attacks_with_the_second_release_and_semi_linear_folds_reproduce_it():
    x, ids = _people(n_people=30, per=3, nuisance=0.2)
    rng = np.random.default_rng(5)
    # a method that replaces the face by a per-image random one, but leaves a per-person cue that
    # survives every release (hair, clothes): invisible against originals, visible to a lazy attacker
    cue = rng.normal(size=(30, x.shape[1]))[np.repeat(np.arange(30), 3)]
    release1 = rng.normal(size=x.shape) + 2 * cue
    release2 = rng.normal(size=x.shape) + 2 * cue
    cell = _Cell(x, release1, release2, ids)
    out = attack(cell, ["ignorant", "lazy", "semi-linear"])
    r1 = {a: out.hits[(a, "r")]["reid_rank1"].mean() for a in ("ignorant", "lazy", "semi-linear")}
    assert r1["ignorant"] < 0.2 < 0.8 < r1["lazy"]
    # too few people per fold to learn a map: semi-linear is lazy, outcome for outcome, in probe order
    for m in ("reid_rank1", "reid_rank1_same", "intrusion_rate"):
        assert len(out.hits[("lazy", "r")][m]) == len(out.groups)
    n_pairs = len(out.pair_groups)
    assert all(len(out.hits[(a, "r")]["reid_tar_far1e-3"]) == n_pairs for a in ("ignorant", "lazy", "semi-linear"))
    assert out.info[("semi-linear", "r")]["source"].startswith("identity folds")


def test_a_gallery_image_the_method_failed_on_matches_nothing():
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(10), 2).astype(str)
    x = (3 * rng.normal(size=(10, 16)))[np.repeat(np.arange(10), 2)] + 0.1 * rng.normal(size=(20, 16))
    anon = x.copy()
    anon[1::2] = 0.0  # every person's second image: no output
    out = attack(_Cell(x, x, anon, ids), ["lazy"])
    hits = out.hits[("lazy", "r")]
    assert hits["reid_rank1"][1::2].all() and not hits["reid_rank1"][0::2].any()
    assert not hits["reid_tar_far1e-3"][0::2].any()


def test_sanity_check_flags_what_cannot_reidentify_originals_and_informed_attackers_weaker_than_ignorant():
    from bench.attackers.sanity import check, unchecked

    rows = {"original": [Row("reid_rank1", "max", 0.97, 40, 0.9, 1.0, "ignorant"),
                         Row("reid_rank1", "max", 0.95, 40, 0.9, 1.0, "lazy"),
                         Row("reid_rank1", "max", 0.95, 40, 0.9, 1.0, "weak")],
            "blur": [Row("reid_rank1", "max", 0.60, 40, 0.5, 0.7, "ignorant"),
                     Row("reid_rank1", "max", 0.55, 40, 0.45, 0.65, "lazy"),
                     Row("reid_rank1", "max", 0.30, 40, 0.2, 0.4, "weak")]}
    bad = check(rows, ["ignorant", "lazy", "weak"])
    assert set(bad) == {"weak"} and "blur" in bad["weak"]
    assert unchecked({"original": []}) and not unchecked(rows)


@register_attacker
class RandomEmbeddings(Attacker):
    """A broken attacker: its 'recognizer' returns noise, so nothing is ever re-identified."""

    name = "test-random"
    gallery = "anonymised"
    default = False

    def project(self, embeddings):
        return np.random.default_rng(0).normal(size=np.shape(embeddings))


def test_an_attacker_returning_random_embeddings_is_caught_and_refused(tmp_path):
    from bench import RunConfig, evaluate
    from bench.report.check import check, make_baseline

    cfg = RunConfig(methods=["blur"], limit=16, out=str(tmp_path / "run"), quiet=True, recognizers=["dlib"],
                    detectors=["dlib-hog"], metrics=["reid"], attackers=["ignorant", "lazy", "test-random"],
                    executor="local")
    logged = []
    df = evaluate(cfg, argv=["test"], log=logged.append)
    csv = pd.read_csv(tmp_path / "run" / "metrics.csv", keep_default_na=False)
    assert list(csv.columns)[-2:] == ["attacker", "valid"]
    rank1 = csv[(csv.metric == "reid_rank1") & (csv.backend == "max")].set_index(["method", "attacker"])
    assert rank1.loc[("original", "test-random"), "valid"] == 0 and rank1.loc[("original", "ignorant"), "valid"] == 1
    assert rank1.loc[("original", "test-random"), "value"] < 0.5
    # the strongest attack is the strongest *valid* one, named in the summary
    assert rank1.loc[("blur", "max"), "value"] == max(rank1.loc[("blur", a), "value"] for a in ("ignorant", "lazy"))
    assert any("attacker 'test-random' failed its sanity check" in m for m in logged)
    assert "| attacker |" in (tmp_path / "run" / "summary.md").read_text()
    meta = dict(sqlite3.connect(tmp_path / "run" / "results.sqlite").execute("SELECT key, value FROM run"))
    assert '"test-random": "rank-1' in meta["attacker_sanity:lfw-sample"]
    # the gate refuses the broken attacker's rows, whatever a baseline says
    base = make_baseline(tmp_path / "run")
    assert not any(e["attacker"] == "test-random" for e in base["entries"])
    base["entries"].append({**base["entries"][0], "attacker": "test-random", "metric": "reid_rank1",
                            "backend": "max", "method": "original", "eps": "", "value": 0.0})
    (tmp_path / "base.json").write_text(__import__("json").dumps(base))
    ok, table = check(tmp_path / "run", tmp_path / "base.json")
    assert not ok and (table.status == "INVALID").sum() == 1
    assert len(df)


def test_old_stores_keep_their_aggregates_as_the_ignorant_attackers(tmp_path):
    from bench.store.results import ResultStore

    db = sqlite3.connect(tmp_path / "results.sqlite")
    db.execute("CREATE TABLE aggregates (dataset TEXT, method TEXT, eps TEXT, seed INTEGER, metric TEXT, "
               "backend TEXT, value REAL, n INTEGER, PRIMARY KEY (dataset, method, eps, seed, metric, backend))")
    db.executemany("INSERT INTO aggregates VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   [("d", "blur", "", 0, "reid_rank1", "dlib", 0.3, 10), ("d", "blur", "", 0, "fid", "x", 9.0, 10)])
    db.commit(), db.close()
    store = ResultStore(tmp_path)
    df = store.aggregates().set_index("metric")
    assert df.loc["reid_rank1", "attacker"] == "ignorant" and df.loc["fid", "attacker"] == ""
    assert (df["valid"] == 1).all()
    store.put_aggregates("d", "blur", None, 0, [Row("reid_rank1", "dlib", 0.4, 10, 0.3, 0.5, "lazy")])
    assert store.aggregates()["attacker"].tolist() == ["lazy"]
    store.close()


@needs_lfw
def test_lfw_devtest_attackers_train_on_devtrain_people_only():
    from bench.attackers.data import training_samples
    from kpdp.datasets import get_dataset

    ds = get_dataset("lfw", LFW_ROOT, "devtest")
    samples, source = training_samples(ds, 300, seed=0)
    people = {s.identity for s in samples}
    assert 300 <= len(samples) < 320 and "devtrain" in source
    assert not people & {s.identity for s in ds.samples}
    assert all(sum(s.identity == p for s in samples) >= 2 for p in people)


def test_the_embedded_sample_trains_its_attackers_on_the_devtrain_people_it_ships(sample):
    """The README's main job attacks the sample with training people of its own (not folds of
    the evaluation images, too few for semi-wccn's whitening), none of them evaluated."""
    from bench.attackers.data import FOLDS_SOURCE, training_samples
    from kpdp.datasets import get_dataset

    samples, source = training_samples(sample, len(sample), seed=0)
    assert source != FOLDS_SOURCE and "devtrain" in source
    assert len(samples) >= len(sample) and len({s.identity for s in samples}) >= 100
    assert not {s.identity for s in samples} & {s.identity for s in sample}
    assert all(s.path.is_file() for s in samples)
    assert len(get_dataset("lfw-sample", split="all")) == len(sample) == 256  # the evaluation images only


@pytest.mark.skipif(not (SHARED / "data" / "celeba-10k").is_dir(), reason="CelebA-10k not in ../shared")
def test_celeba_eval_attackers_train_on_other_celeba_people():
    from bench.attackers.data import training_samples
    from kpdp.datasets import get_dataset

    ds = get_dataset("celeba", SHARED / "data" / "celeba-10k", "eval")
    samples, source = training_samples(ds, 200, seed=0)
    assert 200 <= len(samples) < 220 and "probe-train" in source
    assert not {s.identity for s in samples} & {s.identity for s in ds.samples}


def test_every_seed_is_attacked_with_the_first_seeds_training_images():
    """Training images are anonymised for the first seed only; a later seed must use them, not
    fall back to folds of its own evaluation images."""
    from bench.aggregate.cells import CellData

    class Store:
        def images(self, dataset, method, eps, seed):
            assert (dataset, seed) == ("d#attacker-train", 0)
            yield "x", "ok", "", {"identity": "a"}, {"emb:r": np.ones(3)}

        def meta(self):
            return {}

    cell = CellData("d", "m", None, 1, [], np.array([]), {}, [], np.array([], int), ["r"], [], 0, 0,
                    store=Store(), seeds=[0, 1])
    assert len(cell.training_set("emb:r")) == 1


def test_a_run_adding_methods_to_a_store_checks_on_its_blur_and_keeps_other_verdicts(tmp_path):
    """The second command adds mask to a store that has blur: the not-weaker-than-ignorant check
    runs on the stored blur cell (no "no 'blur' row" note), and the verdict of an attacker that only
    the first command ran stays recorded."""
    from bench import RunConfig, evaluate

    out = str(tmp_path / "run")
    common = dict(limit=8, out=out, quiet=True, recognizers=["dlib"], detectors=["dlib-hog"], metrics=["reid"],
                  executor="local")
    evaluate(RunConfig(methods=["blur"], attackers=["ignorant", "test-random"], **common), argv=["test"])
    evaluate(RunConfig(methods=["mask"], attackers=["ignorant", "lazy"], **common), argv=["test"])
    meta = {k: json.loads(v) for k, v in sqlite3.connect(tmp_path / "run" / "results.sqlite").execute(
        "SELECT key, value FROM run")}
    sanity = meta["attacker_sanity:lfw-sample"]
    assert not any("blur" in n for n in sanity["notes"]), sanity["notes"]
    assert set(sanity["verdicts"]) == {"ignorant", "lazy", "test-random"}
    assert sanity["verdicts"]["test-random"] != "ok"
