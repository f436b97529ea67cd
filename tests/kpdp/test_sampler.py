"""The discrete Laplace sampler (kpdp/sampler.py): OpenDP's privacy map, the exact law in both modes,
and a one-component audit of the secure sampler that catches half the noise."""
import math

import numpy as np
import pytest

from kpdp.audit import audit_sampler, discrete_laplace_cdf, discrete_laplace_gof
from kpdp.mechanism import GRID_STEPS, release
from kpdp.sampler import IntegerLaplace, opendp_epsilon
from kpdp.space import IdentitySpace


class ScaledNoise:
    """A deliberately broken sampler: claims ``scale`` but draws noise of ``factor * scale``."""

    def __init__(self, inner: IntegerLaplace, factor: float):
        self.inner, self.factor, self.mode = inner, factor, inner.mode

    def check_privacy(self, sensitivity, scale, eps):
        return self.inner.check_privacy(sensitivity, scale, eps)

    def noise(self, scale, shape):
        return self.inner.noise(self.factor * np.asarray(scale, np.float64), shape)


def sampler(mode):
    return IntegerLaplace(mode, 5 if mode == "seeded" else None)


# KPDP's per-component scales (grid steps) at ε = 0.5, 1, 4 with the uniform split over 16 components
KPDP_SCALES = [GRID_STEPS * 16 / eps for eps in (0.5, 1, 4)]


def test_opendp_privacy_map_and_check():
    import opendp.mod

    contrib_before = "contrib" in opendp.mod.GLOBAL_FEATURES
    for eps in (0.5, 1, 4):
        eps_k = eps / 16
        assert opendp_epsilon(GRID_STEPS, GRID_STEPS / eps_k) == pytest.approx(eps_k, rel=1e-12)
        for mode in ("secure", "seeded"):
            spent = IntegerLaplace(mode, 0 if mode == "seeded" else None).check_privacy(
                GRID_STEPS, np.full(16, GRID_STEPS / eps_k), np.full(16, eps_k))
            assert spent.shape == (16,) and spent.sum() == pytest.approx(eps, rel=1e-12)
            with pytest.raises(ValueError, match="privacy check failed"):  # half the noise: twice the ε
                IntegerLaplace(mode, 0 if mode == "seeded" else None).check_privacy(GRID_STEPS, GRID_STEPS / eps_k / 2,
                                                                                      eps_k)
    assert opendp_epsilon(256, 256.0) == 1.0 and opendp_epsilon(0, 5.0) == 0.0
    s = IntegerLaplace("secure")
    with pytest.raises(ValueError, match="privacy check failed"):  # more than the 1e-9 relative slack
        s.check_privacy(1024, 1024.0, 1 - 1e-8)
    s.check_privacy(1024, 1024.0, 1 - 1e-12)  # float round-off is tolerated
    for bad in (10.5, -1, True, "3"):
        with pytest.raises(ValueError, match="whole number"):
            s.check_privacy(bad, 1.0, 100.0)
    s.check_privacy(256.0, 256.0, 1.0)  # an integral float is a whole number of steps
    # contrib is enabled only while a measurement is built
    assert ("contrib" in opendp.mod.GLOBAL_FEATURES) == contrib_before


def test_release_checks_what_it_draws():
    """release() checks OpenDP's map at exactly the scales it then draws noise with."""
    space = IdentitySpace.load()

    class Recording(ScaledNoise):
        def check_privacy(self, sensitivity, scale, eps):
            self.checked = (sensitivity, np.array(scale), np.array(eps))
            return super().check_privacy(sensitivity, scale, eps)

        def noise(self, scale, shape):
            self.drawn = np.broadcast_to(np.asarray(scale, np.float64), shape)
            return super().noise(scale, shape)

    coords = np.repeat(space.lo[None], 3, 0)
    for split in ("uniform", "fisher"):
        rec = Recording(IntegerLaplace("seeded", 0), 1.0)
        release(coords, space, 2.0, rec, split)
        d, scale, eps_k = rec.checked
        assert d == GRID_STEPS and eps_k.sum() == pytest.approx(2.0)
        np.testing.assert_array_equal(rec.drawn, np.broadcast_to(scale, rec.drawn.shape))
        np.testing.assert_allclose(scale * eps_k, GRID_STEPS, rtol=1e-12)


def test_cdf_is_the_exact_law():
    for t in (0.3, 3.0, 40.0):
        q = math.exp(-1 / t)
        k = np.arange(-2000, 2001)
        pmf = (1 - q) / (1 + q) * q ** np.abs(k)
        np.testing.assert_allclose(discrete_laplace_cdf(k, t), np.cumsum(pmf), atol=1e-12)


GOF_N = 50_000


@pytest.mark.parametrize("mode", ["seeded", "secure"])
def test_sampler_fits_the_exact_law_and_half_noise_does_not(mode):
    """Chi-square goodness of fit (40 cells, 39 d.o.f.; 17 at t = 3, where integer cut points coincide)
    of each sampler to the exact discrete Laplace pmf P(z) = (1-q)/(1+q) q^|z|, q = exp(-1/t), at a
    small scale and at KPDP's scales. The true scale passes; noise of half (and of 0.9 times) the
    claimed scale is rejected."""
    for t in [3.0] + KPDP_SCALES:
        for factor, passes in ((1.0, True), (0.9, False), (0.5, False)):
            z = ScaledNoise(sampler(mode), factor).noise(t, (GOF_N,))
            stat, p = discrete_laplace_gof(z, t)
            print(f"{mode} t={t:g} drawn at {factor}·t: chi2={stat:.1f} p={p:.3g}")
            if passes:
                assert p > 1e-5
            else:
                assert p < 1e-12


# draws per input for the one-component audit of the secure sampler (ε = KPDP's per-face ε)
SAMPLER_AUDIT_N = {1: 120_000, 4: 30_000}


@pytest.mark.parametrize("eps", [1, 4])
def test_audit_secure_sampler_within_claim_and_half_noise_flagged(eps):
    """One component of KPDP at ε: integer inputs 0 and GRID_STEPS (its sensitivity), secure noise
    of scale GRID_STEPS / ε_k. Within OpenDP's claim ε_k at the true scale; at half the scale the
    lower bound on ε (confidence 0.999) exceeds ε_k."""
    t = GRID_STEPS * 16 / eps
    # alpha 1e-5 for the within-claim check: the event "release >= GRID_STEPS" attains the likelihood
    # ratio e^ε_k exactly, so at alpha 1e-3 a correct sampler would fail about once in 2,000 runs
    ok = audit_sampler(IntegerLaplace("secure"), GRID_STEPS, t, SAMPLER_AUDIT_N[eps], alpha=1e-5)
    half = audit_sampler(ScaledNoise(IntegerLaplace("secure"), 0.5), GRID_STEPS, t, SAMPLER_AUDIT_N[eps])
    print(ok)
    print(half)
    assert ok.eps_claimed == pytest.approx(eps / 16) and half.eps_claimed == ok.eps_claimed
    assert 0 < ok.eps_lower_bound <= ok.eps_claimed and not ok.violation
    assert half.violation and half.eps_lower_bound > ok.eps_claimed
