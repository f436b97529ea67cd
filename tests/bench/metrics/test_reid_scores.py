import numpy as np
import pytest

from bench.metrics import fit_threshold, impostor_scores, intrusion_rate, reid_rank1, tar_at_far


@pytest.fixture
def gallery():
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(30), 3).astype(str)
    centres = rng.normal(size=(30, 64))
    emb = centres[np.repeat(np.arange(30), 3)] + rng.normal(scale=0.1, size=(90, 64))
    return emb, ids


def test_identical_sets_reidentify_perfectly(gallery):
    emb, ids = gallery
    idx = np.arange(len(ids))
    assert reid_rank1(emb, ids, idx, emb, ids, same_image=True).value == 1.0
    r = reid_rank1(emb, ids, idx, emb, ids)
    assert r.value == 1.0 and r.n == 90


def test_shuffled_identities_give_the_expected_rate(gallery):
    emb, ids = gallery
    rng = np.random.default_rng(1)
    idx = np.arange(len(ids))
    # probes whose embeddings belong to someone else: only probes mapped onto their own person hit
    perm = rng.permutation(30)
    probe = emb.reshape(30, 3, -1)[perm].reshape(90, -1)
    expected = float(np.mean(np.repeat(perm == np.arange(30), 3)))
    # excluding the probe's own original removes nothing when the probe is another person's
    assert reid_rank1(probe, ids, idx, emb, ids, same_image=True).value == pytest.approx(expected)


def test_only_people_with_two_images_are_probes():
    emb, ids = np.eye(3), np.array(["a", "a", "b"])
    assert reid_rank1(emb, ids, np.arange(3), emb, ids).n == 2


def test_threshold_and_tar(gallery):
    emb, ids = gallery
    imp = impostor_scores(emb, ids)
    thr = fit_threshold(imp, 1e-3)
    assert (imp >= thr).mean() <= 1e-3
    idx = np.arange(90)
    assert tar_at_far(emb, ids, idx, emb, ids, thr).value == 1.0
    noise = np.random.default_rng(2).normal(size=emb.shape)
    assert tar_at_far(noise, ids, idx, emb, ids, thr).value < 0.05
    # probes still nearest to their own person (own original excluded) intrude on nobody
    assert intrusion_rate(emb, ids, idx, emb, ids, thr).value == 0.0
    assert intrusion_rate(emb[np.r_[3:90, 0:3]], ids, idx, emb, ids, thr).value == 1.0


def test_cross_image_excludes_the_probes_own_original():
    """Each probe is an exact copy of its own original; its person's other image is far away.
    Same-image finds the copy; cross-image must not (it would if the exclusion were dropped)."""
    rng = np.random.default_rng(3)
    gal = rng.normal(size=(20, 32))
    ids = np.repeat(np.arange(10), 2).astype(str)
    probes = gal.copy()
    assert reid_rank1(probes, ids, np.arange(20), gal, ids, same_image=True).value == 1.0
    cross = reid_rank1(probes, ids, np.arange(20), gal, ids)
    assert cross.n == 20 and cross.value < 0.5  # random other images: near chance (1/10)


def test_threshold_is_fitted_at_exactly_the_far():
    scores = np.random.default_rng(4).normal(size=10_000)
    for far in (1e-3, 1e-2):
        thr = fit_threshold(scores, far)
        assert int((scores >= thr).sum()) == int(far * len(scores))  # exactly FAR x n impostors accepted
    tied = np.r_[np.full(5, 0.9), np.zeros(995)]  # 5 tied at the top, FAR 1e-3 allows 1: accept none of them
    thr = fit_threshold(tied, 1e-3)
    assert (tied >= thr).sum() == 0 and thr > 0.9


def test_intrusion_tau_is_the_99th_percentile_of_closest_strangers(gallery):
    from bench.metrics.reid_scores import intrusion_threshold

    emb, ids = gallery
    tau = intrusion_threshold(emb, ids)
    # on the originals themselves the rate is about 1 % or less, whatever the gallery size
    assert intrusion_rate(emb, ids, np.arange(90), emb, ids, tau).value <= 0.02
    big = np.concatenate([emb, np.random.default_rng(5).normal(size=(900, 64))])
    big_ids = np.r_[ids, np.arange(1000, 1900).astype(str)]
    tau_big = intrusion_threshold(big, big_ids)
    assert intrusion_rate(emb, ids, np.arange(90), big, big_ids, tau_big).value <= 0.02


class _Cell:
    """The slice of bench.aggregate.cells.CellData that the reid group reads."""

    method, eps, seed = "m", None, 0

    def __init__(self, gallery_emb, ids, probes_by_rec):
        self.gallery_identities = ids
        self.gallery_feats = {f"emb:{r}": gallery_emb for r in probes_by_rec}
        self.recognizers = list(probes_by_rec)
        self.probe_index = np.arange(len(ids))
        self.probe_identities = ids
        self.probes = [(str(i), {}, {f"emb:{r}": p[i] for r, p in probes_by_rec.items()}) for i in range(len(ids))]
        self.boot_seed = 0

    def probe_features(self, key):
        return np.stack([p[2][key] for p in self.probes])

    def verification_threshold(self, rec):
        return 0.5

    def memo(self, kind, key, compute):
        return compute()


def test_max_row_is_the_strongest_recognizer_with_a_joint_interval(gallery):
    """`max` must be the larger recognizer's value, here the second one (not just >= the first)."""
    from bench.attackers.reid_group import ReidGroup

    emb, ids = gallery
    weak = np.random.default_rng(6).normal(size=emb.shape)  # "dlib" sees noise: near chance
    strong = emb + np.random.default_rng(7).normal(scale=0.05, size=emb.shape)  # "facenet" sees the face
    rows = ReidGroup().aggregate(_Cell(emb, ids, {"dlib": weak, "facenet": strong}))
    get = {(r.metric, r.backend): r for r in rows}
    assert get[("reid_rank1", "facenet")].value > get[("reid_rank1", "dlib")].value
    m = get[("reid_rank1", "max")]
    assert m.value == get[("reid_rank1", "facenet")].value and m.n == 90
    assert m.ci_low <= m.value <= m.ci_high
    assert get[("reid_rank1", "dlib")].ci_high < m.ci_low  # chance vs re-identified: the intervals say so


def test_no_impostor_pair_gives_no_threshold_and_no_tar_rather_than_a_crash_or_zero():
    # `bench run --limit 2` on two photos of one person: nothing to bound a false accept with
    from bench.metrics.reid_scores import fit_threshold, tar_at_far

    assert np.isnan(fit_threshold(np.zeros(0)))
    g = np.eye(3)[[0, 0]] + 0.01
    r = tar_at_far(g, np.array(["a", "a"]), np.array([0, 1]), g, np.array(["a", "a"]), float("nan"))
    assert np.isnan(r.value) and r.n == 0


@pytest.mark.parametrize("block_entries", [1 << 24, 7 * 61])
def test_impostor_scores_are_each_pairs_cosine(block_entries):
    """The Gram-block scores are the cosines of the very pairs the seeded sample picks, in its order."""
    rng = np.random.default_rng(4)
    emb, ids = rng.normal(size=(61, 9)), rng.integers(0, 20, 61).astype(str)
    got = impostor_scores(emb, ids, max_pairs=500, seed=3, block_entries=block_entries)
    i, j = np.triu_indices(61, 1)
    sel = np.random.default_rng(3).choice(len(i), 500, replace=False)
    i, j = i[sel], j[sel]
    i, j = i[ids[i] != ids[j]], j[ids[i] != ids[j]]
    g = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    np.testing.assert_allclose(got, (g[i] * g[j]).sum(1), rtol=0, atol=1e-12)
