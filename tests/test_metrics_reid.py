import numpy as np
import pytest

from bench.metrics import ReIdentification, fit_threshold, impostor_scores, intrusion_rate, reid_rank1, tar_at_far


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


def test_class_matches_functional(gallery):
    emb, ids = gallery
    m = ReIdentification(emb, ids, threshold=0.5)
    m.update(emb[:45], ids[:45], np.arange(45))
    m.update(emb[45:], ids[45:], np.arange(45, 90))
    assert m.compute()["reid_rank1"].value == reid_rank1(emb, ids, np.arange(90), emb, ids).value
    m.reset()
    m.update(emb, ids, np.arange(90))
    assert m.compute()["reid_rank1_same"].n == 90
