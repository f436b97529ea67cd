import numpy as np
import pytest

from kpdp.audit import audit
from kpdp.mechanism import (
    GRID_STEPS,
    budget_split,
    noise_to_spread,
    posterior_mean,
    posterior_sample,
    privatize,
    release,
)
from kpdp.sampler import IntegerLaplace, to_grid
from kpdp.space import IdentitySpace
from tests.kpdp.test_sampler import ScaledNoise


@pytest.fixture(scope="module")
def space():
    return IdentitySpace.load()


def test_round_trip_at_eps_infinity(space, sample_landmarks):
    lm = sample_landmarks["landmarks"][:20]
    out = privatize(lm, float("inf"), seed=0, space=space, residual="full")
    np.testing.assert_allclose(out.landmarks, lm, atol=1e-8)


def test_output_inside_bounds_and_seeds(space, sample_landmarks):
    lm = sample_landmarks["landmarks"][:30]
    for eps in (0.5, 1, 4, 50):
        for post in ("sample", "mean", "clamp"):
            r = privatize(lm, eps, seed=1, space=space, postprocess=post)
            assert np.all(r.coords_private >= space.lo - 1e-12) and np.all(r.coords_private <= space.hi + 1e-12)
            assert r.eps_spent == eps and r.eps_per_component.sum() == pytest.approx(eps)
    a = privatize(lm, 1.0, seed=7, space=space).landmarks
    assert np.array_equal(a, privatize(lm, 1.0, seed=7, space=space).landmarks)
    assert not np.allclose(a, privatize(lm, 1.0, seed=8, space=space).landmarks)
    # the output is the decode of the released coordinates with the face's own pose and residual
    r = privatize(lm[:1], 2.0, seed=3, space=space, residual="full")
    _, res, pose = space.encode(lm[0])
    np.testing.assert_allclose(r.landmarks[0], space.decode(r.coords_private[0], res, pose), atol=1e-9)


def test_posterior_sampling_draws_a_new_geometry_per_release_from_the_right_law(space, sample_landmarks):
    lm = sample_landmarks["landmarks"][:1]
    # one photo released under 8 seeds: the mean gives (nearly) the prior mean every time at small
    # ε; a posterior sample moves as much as the posterior is wide
    spread = {post: np.std([privatize(lm, 0.5, seed=s, space=space, postprocess=post).coords_private[0]
                            for s in range(8)], axis=0).mean() for post in ("sample", "mean")}
    assert spread["sample"] > 0.5 * space.prior_std.mean() and spread["sample"] > 10 * spread["mean"]
    # the draws follow the posterior: their average over many draws is the posterior mean, both
    # where the prior dominates (ε = 1) and where the release does (ε = 256)
    coords = space.coords(lm)
    for eps in (1.0, 256.0):
        noisy = release(coords, space, eps, IntegerLaplace("seeded", 0))
        eps_k = budget_split(space, eps)
        rng = np.random.default_rng(0)
        draws = np.stack([posterior_sample(noisy, space, eps_k, rng)[0] for _ in range(4000)])
        se = draws.std(0) / np.sqrt(len(draws))
        assert np.all(np.abs(draws.mean(0) - posterior_mean(noisy, space, eps_k)[0]) < 5 * se)
        assert np.all(draws >= space.lo - 1e-12) and np.all(draws <= space.hi + 1e-12)


def test_residual_modes(space, sample_landmarks):
    from kpdp.mechanism import default_residual_basis

    lm = sample_landmarks["landmarks"][:3]
    full = privatize(lm, 1.0, seed=2, space=space, residual="full").landmarks
    kept = privatize(lm, 1.0, seed=2, space=space, residual="expression").landmarks
    none = privatize(lm, 1.0, seed=2, space=space, residual="none").landmarks
    assert not np.allclose(full, kept) and not np.allclose(kept, none)
    # the kept residual is the projection on the shipped basis: decoding it reproduces the output
    c, r, pose = space.encode(lm[0])
    out = privatize(lm[:1], float("inf"), seed=0, space=space, residual="expression").landmarks[0]
    np.testing.assert_allclose(out, space.decode(c, default_residual_basis().project(r), pose), atol=1e-9)
    with pytest.raises(ValueError, match="valid: expression, full, none"):
        privatize(lm, 1.0, seed=0, space=space, residual="some")


def test_secure_mode_is_the_default_without_seed(space, sample_landmarks):
    r = privatize(sample_landmarks["landmarks"][:2], 1.0, space=space)
    assert r.mode == "secure" and r.seed is None
    with pytest.raises(ValueError, match="takes no seed"):
        IntegerLaplace("secure", seed=1)


def test_bad_input(space):
    good = np.random.default_rng(0).uniform(50, 150, (68, 2))
    with pytest.raises(ValueError, match="shape"):
        privatize(np.zeros((5, 2)), 1.0, seed=0, space=space)
    with pytest.raises(ValueError, match="NaN"):
        privatize(np.full((68, 2), np.nan), 1.0, seed=0, space=space)
    with pytest.raises(ValueError, match="degenerate"):
        privatize(np.ones((68, 2)), 1.0, seed=0, space=space)
    for bad in (0, -1, float("nan"), "x"):
        with pytest.raises(ValueError, match="ε must"):
            privatize(good, bad, seed=0, space=space)


def test_budget_splits(space):
    assert np.allclose(budget_split(space, 1.6, "uniform"), 0.1)
    w = budget_split(space, 1.0, "fisher")
    assert w.sum() == pytest.approx(1.0) and w[0] > w[-1]


AUDIT_N = {0.5: 2_000_000, 1: 1_000_000, 4: 400_000}


def half_noise(mode, seed):
    """A deliberately broken sampler for the audit: it claims scale t and draws at t / 2."""
    return ScaledNoise(IntegerLaplace(mode, seed), 0.5)


@pytest.mark.parametrize("eps", [0.5, 1, 4])
def test_audit_seeded_mechanism_within_claim(space, eps):
    r = audit(space, eps, AUDIT_N[eps], mode="seeded", seed=11)
    print(r)
    assert 0 < r.eps_lower_bound <= eps


@pytest.mark.parametrize("eps", [0.5, 1, 4])
def test_audit_secure_mechanism_within_claim(space, eps):
    """The secure path end to end. At this n the whole-mechanism audit has no power against half the
    noise (that is shown for the secure sampler in tests/kpdp/test_sampler.py: goodness of fit and a
    one-component audit); it checks that the secure release is not grossly wrong."""
    r = audit(space, eps, 15_000, mode="secure")
    print(r)
    assert r.eps_lower_bound <= eps


@pytest.mark.parametrize("eps", [0.5, 1, 4])
def test_audit_catches_a_broken_mechanism(space, eps):
    """Half the noise scale (true loss 2ε): the audit must report a violation."""
    r = audit(space, eps, AUDIT_N[eps], mode="seeded", seed=11, make_sampler=half_noise)
    print(r)
    assert r.violation


def test_release_refuses_an_overclaim(space):
    """The privacy check in release() raises when OpenDP's map exceeds the budget."""
    class Overclaiming(IntegerLaplace):
        def check_privacy(self, sensitivity, scale, eps):  # checks against half the budget
            return super().check_privacy(sensitivity, scale, np.asarray(eps) / 2)

    with pytest.raises(ValueError, match="privacy check failed"):
        release(np.repeat(space.lo[None], 2, 0), space, 1.0, Overclaiming("seeded", 0))


@pytest.mark.parametrize("eps", [16.0, 64.0, 256.0])
def test_noise_to_spread_is_the_std_release_draws(space, eps):
    # the noise release() actually adds, in units of the training spread, is what noise_to_spread says
    coords = np.tile(space.prior_mean, (20000, 1))
    sampler = IntegerLaplace("seeded", 5)
    step = space.sensitivity / GRID_STEPS
    noise = release(coords, space, eps, sampler) - to_grid(coords, space.lo, step, GRID_STEPS)
    measured = noise.std(0) * step / space.prior_std
    np.testing.assert_allclose(measured, noise_to_spread(space, eps), rtol=0.05)
    # the noise outweighs the training spread at ε 64, not at ε 256
    assert noise_to_spread(space, 64.0).min() > 1 > noise_to_spread(space, 256.0).max()
    assert not noise_to_spread(space, float("inf")).any()
