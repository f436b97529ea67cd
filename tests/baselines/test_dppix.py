"""DP-Pix privacy: the exact L1 sensitivity of the pre-noise release, and a black-box audit of the
output image. Run with ``-s`` to see the tables."""
import numpy as np
import pytest

from baselines.dppix import (
    DPPix,
    dppix_cell_sums,
    dppix_counts,
    dppix_image,
    dppix_release,
    dppix_scale,
    dppix_sensitivity,
)
from kpdp.audit import eps_lower_bound
from kpdp.sampler import IntegerLaplace


class Recording:
    """Zero noise (so the release is the pre-noise cell sums); records the scale it was asked for."""

    mode = "test"

    def __init__(self):
        self.scales, self.checks = [], []

    def check_privacy(self, sensitivity, scale, eps):
        self.checks.append((sensitivity, float(scale), float(eps)))

    def noise(self, scale, shape):
        self.scales.append(np.unique(np.asarray(scale, np.float64)))
        return np.zeros(shape, np.int64)


class Batched:
    """``n`` independent releases in one call (the same law as ``n`` calls); ``factor`` scales the
    noise: 0.5 is the test-only broken release with half the noise."""

    def __init__(self, inner, n, factor=1.0):
        self.inner, self.n, self.factor, self.mode = inner, n, factor, inner.mode

    def check_privacy(self, sensitivity, scale, eps):  # checks the claimed scale, as a buggy sampler would
        return self.inner.check_privacy(sensitivity, scale, eps)

    def noise(self, scale, shape):
        return self.inner.noise(np.asarray(scale) * self.factor, (self.n, *shape))


# ---------------------------------------------------------------- (1) exact sensitivity

# region sizes that are not multiples of b: partial cells along the right and bottom edges, and
# corner cells down to a single pixel
SIZES = {8: [(37, 29), (33, 25), (9, 8)], 16: [(45, 38), (33, 17), (17, 31)]}
SENSITIVITY_TABLE = {}


def _placements(h, w, b, k, rng):
    """Sets of ``k`` distinct pixels (each ``(k, 2)`` of (y, x)) where a change is likeliest to count
    more than once: packed near each corner (the bottom-right one is the smallest partial cell),
    inside one interior cell, along the right and bottom edges, one per cell, and random sets."""
    ys, xs = np.mgrid[0:h, 0:w]
    pix = np.stack([ys.ravel(), xs.ravel()], 1)
    out = []
    for cy, cx in ((h - 1, w - 1), (0, 0), (0, w - 1), (h - 1, 0), (min(b + b // 2, h - 1), min(b + b // 2, w - 1))):
        d = np.maximum(abs(pix[:, 0] - cy), abs(pix[:, 1] - cx)) * (h * w) + abs(pix[:, 0] - cy) + abs(pix[:, 1] - cx)
        out.append(pix[np.argsort(d, kind="stable")[:k]])
    for edge in (pix[pix[:, 1] == w - 1], pix[pix[:, 0] == h - 1], pix[pix[:, 1] >= (w - 1) // b * b]):
        if len(edge) >= k:
            out.append(edge[-k:])
            out.append(edge[rng.choice(len(edge), k, replace=False)])
    corners = np.array([(min(y + b - 1, h - 1), min(x + b - 1, w - 1)) for y in range(0, h, b) for x in range(0, w, b)])
    if len(corners) >= k:
        out.append(corners[-k:])
    out += [pix[rng.choice(len(pix), k, replace=False)] for _ in range(200)]
    return out


def _pairs(h, w, b, k, rng):
    """Neighbouring uint8 images (A, B), batched, differing in at most k pixels, all channels."""
    a_list, b_list = [], []
    zeros, full = np.zeros((h, w, 3), np.uint8), np.full((h, w, 3), 255, np.uint8)
    noise_img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    for p in _placements(h, w, b, k, rng):
        for base, new in ((zeros, 255), (full, 0), (noise_img, None), (noise_img, "flip")):
            x = base.copy()
            if new is None:
                x[p[:, 0], p[:, 1]] = rng.integers(0, 256, (len(p), 3), dtype=np.uint8)
            elif new == "flip":
                x[p[:, 0], p[:, 1]] = np.where(base[p[:, 0], p[:, 1]] < 128, 255, 0)
            else:
                x[p[:, 0], p[:, 1]] = new
            a_list.append(base)
            b_list.append(x)
    if k == 1:  # every single pixel of the region, 0 <-> 255 in all channels
        for y in range(h):
            x = np.zeros((w, h, w, 3), np.uint8)
            x[np.arange(w), y, np.arange(w)] = 255
            a_list += [zeros] * w
            b_list += list(x)
    return np.stack(a_list), np.stack(b_list)


@pytest.mark.parametrize("b", [8, 16])
@pytest.mark.parametrize("m", [1, 16, 32])
def test_sensitivity_of_the_release_is_the_one_the_noise_is_scaled_to(b, m):
    rng = np.random.default_rng(100 * b + m)
    eps = 1.0
    worst = {1: 0, m: 0}
    for h, w in SIZES[b]:
        for k in sorted({1, m}):
            a, x = _pairs(h, w, b, k, rng)
            assert (np.any(a != x, axis=-1).sum(axis=(1, 2)) <= k).all()  # neighbours
            rec = Recording()
            ra, rb = dppix_release(a, b, m, eps, rec), dppix_release(x, b, m, eps, rec)
            assert np.array_equal(ra, dppix_cell_sums(a, b)[0])
            worst[k] = max(worst[k], int(np.abs(rb - ra).sum(axis=(1, 2, 3)).max()))
    # the noise the release actually draws: discrete Laplace of scale t on every sum
    (t,) = {float(s) for r in rec.scales for s in r}
    bound = t * eps  # the L1 sensitivity at which this noise gives exactly ε
    SENSITIVITY_TABLE[(b, m)] = (worst[1], worst[m], bound)
    print(f"\nb={b:2d} m={m:2d}: max L1 one pixel {worst[1]:6d}, {m} pixels {worst[m]:6d}; "
          f"noise scaled to Δ = {bound:.0f} (dppix_sensitivity = {dppix_sensitivity(m)})")
    assert worst[m] <= bound * (1 + 1e-12) and worst[1] <= bound * (1 + 1e-12)
    # the release asked OpenDP about its own Δ, and OpenDP's map at the largest change found is <= ε
    assert set(rec.checks) == {(dppix_sensitivity(m), t, eps)}
    assert IntegerLaplace("seeded", 0).check_privacy(worst[m], t, eps) <= eps * (1 + 1e-9)
    # the bound is attained (m pixels 0 <-> 255 in all channels): the noise is not oversized
    assert worst[m] == dppix_sensitivity(m) == round(bound) and worst[1] == 3 * 255


def test_counts_partition_the_region():
    for b, sizes in SIZES.items():
        for h, w in sizes:
            c = dppix_counts(h, w, b)
            assert c.sum() == h * w and c.max() <= b * b and c.min() >= 1
            crop = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
            sums, counts = dppix_cell_sums(crop, b)
            assert np.array_equal(counts, c)
            assert np.array_equal(sums.sum(axis=(0, 1)), crop.astype(np.int64).sum(axis=(0, 1)))


# ---------------------------------------------------------------- (2) empirical audit

N_AUDIT = 100_000
B, M = 16, 16  # the defaults


def _audit_case(case):
    """Neighbouring 20x20 crops (cells 16x16, 16x4, 4x16 and 4x4) differing in M pixels in all
    channels, the affected cell, and the displayed mean of that cell on each."""
    a = np.full((20, 20, 3), 120, np.uint8)
    if case == "interior":  # 16 pixels of the full cell, 0 vs 255
        a[4:8, 4:8] = 0
        cell = (slice(0, 16), slice(0, 16))
    else:  # the smallest partial cell (4x4 = 16 pixels), 0 vs 255
        a[16:, 16:] = 0
        cell = (slice(16, 20), slice(16, 20))
    x = a.copy()
    x[(a == 0).all(-1)] = 255
    assert np.any(a != x, axis=-1).sum() == M
    lo, hi = a[cell].reshape(-1, 3).mean(0), x[cell].reshape(-1, 3).mean(0)
    return a, x, cell, lo, hi


def _statistic(crop, cell, lo, hi, eps, seed, factor, n=N_AUDIT, chunk=50_000):
    """Likelihood-ratio statistic of the affected cell of DP-Pix's output image, over n releases:
    for Laplace noise, sum over channels of the displayed value clipped to [mean_A, mean_B]. Every
    pixel of a cell shows the same value (checked in the unbiasedness test): one pixel suffices."""
    sampler = IntegerLaplace("seeded", seed)
    out = []
    for i in range(0, n, chunk):
        img = dppix_image(crop, B, M, eps, Batched(sampler, min(chunk, n - i), factor))
        out.append(np.clip(img[:, cell[0].start, cell[1].start], lo, hi).sum(1))
    return np.concatenate(out)


AUDIT_TABLE = {}


@pytest.mark.parametrize("case", ["interior", "partial"])
@pytest.mark.parametrize("eps", [0.5, 1.0, 4.0])
def test_audit_of_the_output_image(case, eps):
    a, x, cell, lo, hi = _audit_case(case)
    seed = int(eps * 100) + (0 if case == "interior" else 50)
    lb, _ = eps_lower_bound(_statistic(a, cell, lo, hi, eps, seed, 1.0), _statistic(x, cell, lo, hi, eps, seed + 1, 1.0))
    lb_half, _ = eps_lower_bound(_statistic(a, cell, lo, hi, eps, seed + 2, 0.5),
                                 _statistic(x, cell, lo, hi, eps, seed + 3, 0.5))
    AUDIT_TABLE[(case, eps)] = (lb, lb_half)
    print(f"\n{case:8s} ε={eps}: audit lower bound {lb:.3f}; with half the noise (true loss {2 * eps}) {lb_half:.3f}")
    assert lb <= eps  # holds except with probability 1e-3 for an ε-DP release (seeded: deterministic)
    assert lb > 0.6 * eps  # the audit has power: it sees most of the loss the worst case really has
    assert lb_half > eps  # and a release with half the noise is flagged


def test_anonymize_face_is_dppix_image_on_the_region_bbox(face_image):
    from kpdp.method import face_region, mask_bbox

    image, face = face_image
    mask = face_region(face, image.shape, "box")
    out, _, info = DPPix(eps=2.0).anonymize_face(image, face, mask, seed=7)
    x0, y0, x1, y1 = mask_bbox(mask)
    assert (y1 - y0) % 16 or (x1 - x0) % 16  # the sample face has partial cells
    expect = dppix_image(image[y0:y1, x0:x1], 16, 16, 2.0, IntegerLaplace("seeded", 7))
    assert np.array_equal(out[y0:y1, x0:x1], expect)
    assert info == {"eps_spent": 2.0, "noise_mode": "seeded"}


# ---------------------------------------------------------------- unbiasedness and scale

def test_cell_means_are_unbiased_and_scale_is_right():
    b, m, eps, n = 16, 16, 50.0, 40_000
    crop = np.random.default_rng(1).integers(100, 140, (33, 20, 3), dtype=np.uint8)  # cells 16/16/1 x 16/4
    sums, counts = dppix_cell_sums(crop, b)
    t = dppix_sensitivity(m) / eps
    assert dppix_scale(b, m, eps) == pytest.approx(3 * 255 * m / (b * b * eps))
    noisy = dppix_release(crop, b, m, eps, Batched(IntegerLaplace("seeded", 0), n))
    err = noisy - sums
    assert np.abs(err.mean(0)).max() < 5 * np.sqrt(2) * t / np.sqrt(n)
    # discrete Laplace: E|Z| = 2q / (1 - q²), q = exp(-1/t), ≈ t; half or double the scale is far off
    q = np.exp(-1 / t)
    assert np.abs(err).mean() == pytest.approx(2 * q / (1 - q * q), rel=0.01)
    # the displayed image: every pixel shows its cell's mean, unbiased where clamping is negligible
    img = dppix_image(crop, b, m, eps, Batched(IntegerLaplace("seeded", 1), n)).astype(np.float64)
    means = sums / counts[..., None]
    for (i, j), c in np.ndenumerate(counts):
        block = img[:, 16 * i:16 * i + 16, 16 * j:16 * j + 16]
        assert (block == block[:, :1, :1]).all()
        if c >= 16:  # scale on the mean t / c <= 15.3, 7 scales from 0 and 255
            se = np.sqrt(2) * t / c / np.sqrt(n)
            assert np.abs(block[:, 0, 0].mean(0) - means[i, j]).max() < 5 * se + 0.05


def test_eps_infinity_releases_the_exact_cell_sums():
    """ε = ∞ (the top of a grid's ε axis) is plain pixelation, not an error on every image."""
    import numpy as np

    from baselines.dppix import DPPix, dppix_cell_sums, dppix_release
    from kpdp.sampler import IntegerLaplace

    crop = np.random.default_rng(0).integers(0, 256, (40, 36, 3), dtype=np.uint8)
    out = dppix_release(crop, 16, 16, float("inf"), IntegerLaplace("seeded", 0))
    assert np.array_equal(out, dppix_cell_sums(crop, 16)[0])
    assert DPPix(eps=float("inf")).eps == float("inf")
