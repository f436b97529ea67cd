import numpy as np
import pytest
from scipy.stats import binomtest

from bench.metrics.intervals import bootstrap_max, bootstrap_mean, wilson


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (74, 1000), (500, 560)])
def test_wilson_matches_scipy(k, n):
    ref = binomtest(k, n).proportion_ci(0.95, method="wilson")
    assert wilson(k, n) == pytest.approx((ref.low, ref.high), abs=1e-9)


def test_identity_bootstrap_is_wider_than_an_image_bootstrap_for_correlated_probes():
    """Ten probes per person, all re-identified or none: 40 people are 40 observations, not 400."""
    rng = np.random.default_rng(0)
    person_hit = rng.random(40) < 0.3
    hits = np.repeat(person_hit, 10).astype(float)
    people = np.repeat(np.arange(40), 10)
    lo_id, hi_id = bootstrap_mean(hits, people, seed=1)
    lo_img, hi_img = bootstrap_mean(hits, np.arange(400), seed=1)
    assert lo_id <= hits.mean() <= hi_id
    assert (hi_id - lo_id) > 2 * (hi_img - lo_img)


def test_identity_bootstrap_covers_the_true_rate():
    """Coverage of the 95 % interval on clustered data, 200 simulated studies: about 95 %."""
    rng = np.random.default_rng(2)
    covered = 0
    for s in range(200):
        p = np.clip(rng.normal(0.2, 0.1, 60), 0, 1)  # per-person rates around 0.2
        sizes = rng.integers(2, 6, 60)
        hits = np.concatenate([rng.random(k) < q for q, k in zip(p, sizes)]).astype(float)
        people = np.repeat(np.arange(60), sizes)
        lo, hi = bootstrap_mean(hits, people, n_boot=500, seed=s)
        covered += lo <= 0.2 <= hi
    assert 0.88 <= covered / 200 <= 0.99


def test_bootstrap_max_is_joint_over_rows():
    people = np.repeat(np.arange(50), 2)
    a = np.tile([1.0, 0.0], 50)
    b = 1 - a
    lo, hi = bootstrap_max(np.stack([a, b]), people, seed=0)
    assert lo == hi == 0.5  # each person: one hit for a, one for b: both rows are 0.5 in every replicate
