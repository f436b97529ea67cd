"""Identity diversity (bench.metrics.diversity): the exact closed form, its bootstrap and the group."""
import numpy as np
import pytest

from bench.metrics.diversity import (
    DiversityGroup,
    _distance_sums,
    _identity_sums,
    diversity_interval,
    identity_diversity,
)


def _pairwise(anon, orig, ids):
    """The definition, pair by pair: mean cosine distance over pairs of different people."""
    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    different = np.triu(ids[:, None] != ids[None], 1)
    a, o = unit(anon), unit(orig)
    return (1 - a @ a.T)[different].mean() / (1 - o @ o.T)[different].mean()


@pytest.fixture(scope="module")
def people():
    """Original embeddings of 12 people, 1 to 4 images each, and anonymised ones nearby."""
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(12), rng.integers(1, 5, 12)).astype(str)
    centres = rng.normal(size=(12, 16))
    orig = centres[ids.astype(int)] + 0.3 * rng.normal(size=(len(ids), 16))
    anon = 0.5 * orig + rng.normal(size=orig.shape)
    return anon, orig, ids


def test_identical_outputs_have_no_diversity(people):
    _, orig, ids = people
    same = np.tile(np.random.default_rng(1).normal(size=16), (len(ids), 1))
    assert identity_diversity(same, orig, ids) == pytest.approx(0, abs=1e-9)


def test_outputs_equal_to_originals_are_as_diverse_as_people(people):
    _, orig, ids = people
    assert identity_diversity(orig, orig, ids) == pytest.approx(1.0)
    assert identity_diversity(3 * orig, orig, ids) == pytest.approx(1.0)  # cosine: the scale does not count


def test_known_case():
    """Four people with orthogonal originals (distance 1); outputs merge them into two pairs:
    4 of the 6 pairs stay at distance 1, the two merged pairs fall to 0."""
    orig = np.eye(4)
    anon = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], float)
    assert identity_diversity(anon, orig, list("abcd")) == pytest.approx(4 / 6)


def test_closed_form_equals_the_pairwise_definition(people):
    anon, orig, ids = people
    assert identity_diversity(anon, orig, ids) == pytest.approx(_pairwise(anon, orig, ids), rel=1e-12)


def test_bootstrap_weights_equal_duplicated_identities(people):
    """A bootstrap draw that takes a person twice is the pairwise definition on the data with that
    person's images duplicated under two labels (copies of one person are never paired)."""
    anon, orig, ids = people
    labels = np.unique(ids)
    w = np.zeros(len(labels))
    np.add.at(w, [0, 3, 3, 7, 9, 9, 9], 1)
    rows = [i for k, lab in enumerate(labels) for _ in range(int(w[k])) for i in np.flatnonzero(ids == lab)]
    a, n = _identity_sums(anon, ids)
    o, _ = _identity_sums(orig, ids)
    da, _ = _distance_sums(a, n, w[None])
    do, _ = _distance_sums(o, n, w[None])
    assert da[0] / do[0] == pytest.approx(_pairwise(anon[rows], orig[rows], ids[rows]), rel=1e-12)


def test_interval_brackets_the_value_and_is_seeded(people):
    anon, orig, ids = people
    v = identity_diversity(anon, orig, ids)
    lo, hi = diversity_interval(anon, orig, ids, seed=3)
    assert lo < v < hi
    assert (lo, hi) == diversity_interval(anon, orig, ids, seed=3)


def _cell(anon, orig, ids, with_features=True):
    from bench.aggregate.cells import CellData

    key = "emb:dlib-resnet"
    feats = {key: orig} if with_features else {}
    probes = [(f"img{i}", {}, {key: anon[i]} if with_features else {}) for i in range(len(ids))]
    return CellData("d", "m", None, 0, [f"img{i}" for i in range(len(ids))], np.asarray(ids), feats, probes,
                    np.arange(len(ids)), ["dlib-resnet"], [], 0, 0)


def test_group_reads_the_reid_features(people):
    anon, orig, ids = people
    rows = DiversityGroup().aggregate(_cell(anon, orig, ids))
    assert [(r.metric, r.backend, r.n) for r in rows] == [("identity_diversity", "dlib-resnet", len(ids))]
    assert rows[0].value == pytest.approx(identity_diversity(anon, orig, ids))
    assert rows[0].ci_low < rows[0].value < rows[0].ci_high


def test_group_gives_no_rows_without_reid(people):
    anon, orig, ids = people
    assert DiversityGroup().aggregate(_cell(anon, orig, ids, with_features=False)) == []
