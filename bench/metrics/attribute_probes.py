"""Attribute probes: one logistic regression per CelebA attribute on frozen Inception features of
the face region (``../shared/docs/metrics.md``, *Attributes kept*).

The extractor is the FID Inception-v3 (TensorFlow 2015-12-05 weights), not one of the
re-identification recognizers, and it is the *same forward pass* FID makes: the whole image
resized to 299 (:func:`bench.metrics.fid.inception_pass`). The probes read the face out of that
pass's spatial maps: the square of the project's aligned crop
(:func:`kpdp.faces.geometry.alignment_matrix` from the 68 landmarks of
:class:`kpdp.faces.analyze.FaceFinder`, a template that keeps the jaw, the brows and some
forehead) is sampled on a :data:`GRID` x :data:`GRID` lattice of bilinear samples in each map of
:data:`FEATURE_MAPS` and averaged (a rotated region-of-interest pooling, as a detector's head
reads a box). Until version 2 the probes read a second forward of the network on the aligned crop,
which cost as much as FID itself (issue #36).

Caveat: the 8 x 8 Mixed_7c map of a 250 px LFW image gives a face about 3 cells wide; Mixed_6e's
17 x 17 map is read beside it for finer detail. Each feature's receptive field is larger than the
face square, so hair and background near the face reach the probes too, for the original and the
anonymised image alike.

Training (``python -m bench.cli.attribute_probes --celeba DIR --out bench/assets/attribute_probes``):
CelebA's identity-disjoint splits (:class:`kpdp.datasets.CelebA`): fit on ``probe-train``,
balanced accuracy on ``probe-val`` (people never seen in training); only attributes with balanced
accuracy >= :data:`USE_THRESHOLD` are *used* (reported by the metric group). Features are
standardised, classes balanced, the inverse regularisation strength chosen per attribute by
identity-grouped cross-validation inside ``probe-train``. The features of the ~8,000 images of
the two probe splits are cached under ``work-data/`` (~4 minutes per thousand images on one CPU
thread), keyed by the extractor's and the face finder's versions; ``eval`` images are never read.

Writes ``<out>.safetensors`` (``weight`` (40, D), ``bias`` (40,), feature ``mean`` and ``std``
(D,), float32; D = 2,816) and ``<out>.json`` (provenance, per-attribute accuracy, the used attributes,
the safetensors file's sha256, which :func:`load_probes` checks).
"""
from __future__ import annotations

import functools
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.metrics.fid import _model_path, inception_pass
from kpdp.datasets import CelebA, get_dataset, load_image
from kpdp.faces.analyze import FaceFinder, NoFaceError
from kpdp.faces.geometry import alignment_matrix, apply_affine, invert_affine
from kpdp.faces.registry import file_sha256

ROOT = Path(__file__).resolve().parents[2]
ASSETS = Path(__file__).resolve().parents[1] / "assets"  # bench/assets
DEFAULT_OUT = ASSETS / "attribute_probes"
WORK = ROOT / "work-data" / "attribute_features"
CROP_SIZE = 96  # the face square's template size: only its shape matters here, not its pixels
GRID = 6  # bilinear samples per side of the face square
FEATURE_MAPS = ("mixed_7", "mixed_10")  # Mixed_6e (768) then Mixed_7c (2048): D = 2,816
USE_THRESHOLD = 0.80
EXTRACTOR = "inception-2015-12-05-face-region"
FORMAT_VERSION = "2"
C_GRID = (0.0001, 0.0003, 0.001, 0.003, 0.01)  # inverse L2 strength (scikit-learn's C)
# The probes are fitted on the leading principal components of the standardised features and
# folded back into D-d weights: 8x cheaper fits, so that a cross-validated C per attribute is
# affordable on a shared CPU; L2 shrinks the low-variance directions left out anyway.
N_COMPONENTS = 256
SEED = 0
PROBE_SPLITS = ("probe-train", "probe-val")  # the eval split's images are never read here


def face_grid(landmarks: np.ndarray, shape: tuple, grid: int = GRID) -> np.ndarray:
    """(grid, grid, 2) sample points of the aligned face square of ``landmarks`` in an image of
    ``shape``, in ``torch.nn.functional.grid_sample``'s coordinates (-1 and 1: the image's edges,
    ``align_corners=False``), so they read the same place in any map of the whole image.

    Example (a face square centred in the image samples around the centre):
        >>> lm = np.random.default_rng(0).uniform(40, 60, (68, 2))
        >>> g = face_grid(lm, (100, 100, 3))
        >>> g.shape, bool(np.abs(g.mean((0, 1))).max() < 0.2)
        ((6, 6, 2), True)
    """
    inv = invert_affine(alignment_matrix(landmarks, CROP_SIZE))
    t = (np.arange(grid) + 0.5) * CROP_SIZE / grid
    gx, gy = np.meshgrid(t, t)
    pts = apply_affine(inv, np.stack([gx.ravel(), gy.ravel()], 1))
    h, w = shape[:2]
    return np.stack([2 * pts[:, 0] / w - 1, 2 * pts[:, 1] / h - 1], 1).reshape(grid, grid, 2)


def face_features(maps: dict, landmarks: np.ndarray, shape: tuple) -> np.ndarray:
    """(D,) float32 probe features: the mean over :func:`face_grid`'s samples of each map of
    :data:`FEATURE_MAPS` in ``maps`` (one image's :func:`bench.metrics.fid.inception_pass`).

    Example:
        >>> import torch
        >>> maps = {"mixed_7": torch.ones(768, 17, 17), "mixed_10": torch.full((2048, 8, 8), 2.0)}
        >>> f = face_features(maps, np.random.default_rng(0).uniform(40, 60, (68, 2)), (100, 100))
        >>> f.shape, float(f[0]), float(f[-1])
        ((2816,), 1.0, 2.0)
    """
    import torch
    import torch.nn.functional as F

    grid = torch.from_numpy(face_grid(landmarks, shape)).float()[None]
    parts = [F.grid_sample(maps[name][None].float(), grid, mode="bilinear", padding_mode="border",
                           align_corners=False).mean((2, 3))[0] for name in FEATURE_MAPS]
    return torch.cat(parts).numpy().astype(np.float32)


def image_features(images: list[np.ndarray], landmarks: list[np.ndarray], device: str = "cpu",
                   batch: int = 16) -> np.ndarray:
    """(N, D) probe features of whole images with their faces' landmarks (the metric reads the
    pass FID made instead: :meth:`bench.measure.analysis.ImageContext.inception`)."""
    passes = inception_pass(list(images), device, batch)
    out = [face_features(p, lm, im.shape) for p, lm, im in zip(passes, landmarks, images)]
    return np.stack(out) if out else np.zeros((0, 768 + 2048), np.float32)


@functools.lru_cache(maxsize=None)
def extractor_sha256() -> str:
    return file_sha256(_model_path())


def read_celeba_attributes(path: Path | str) -> tuple[list[str], dict[str, np.ndarray]]:
    """``list_attr_celeba.txt``: a count line, the 40 names, then ``<file> 1 -1 ...`` rows.
    Returns (names, file name -> (40,) bool).

    Example:
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "a.txt")
        >>> _ = open(f, "w").write("1\\nMale Smiling\\n000001.jpg  1 -1\\n")
        >>> names, rows = read_celeba_attributes(f)
        >>> names, rows["000001.jpg"].tolist()
        (['Male', 'Smiling'], [True, False])
    """
    lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip()]
    start = 1 if len(lines[0]) == 1 else 0
    names = lines[start]
    rows = {}
    for r in lines[start + 1:]:
        if len(r) != len(names) + 1 or any(v not in ("1", "-1") for v in r[1:]):
            raise ValueError(f"{path}: malformed attribute row {' '.join(r[:3])} ...")
        rows[r[0]] = np.array([v == "1" for v in r[1:]])
    return names, rows


# -- features of CelebA, cached ------------------------------------------------------------------
def _cache_dir(work: Path) -> Path:
    finder_v = hashlib.sha1(_finder_version().encode()).hexdigest()[:10]
    return Path(work) / f"{EXTRACTOR}-{extractor_sha256()[:12]}-grid{GRID}-finder-{finder_v}"


@functools.lru_cache(maxsize=None)
def _finder_version() -> str:
    return _finder().version


@functools.lru_cache(maxsize=None)
def _finder():
    return FaceFinder()


def _extract_chunk(samples) -> dict:
    images, marks, ids, failed = [], [], [], []
    for s in samples:
        if CelebA.split_of(s.identity) not in PROBE_SPLITS:
            continue
        try:
            image = load_image(s.path)
            face = _finder().primary(image)
        except (NoFaceError, ValueError) as exc:
            failed.append(f"{s.path.name}: {exc}")
            continue
        images.append(image)
        marks.append(face.landmarks)
        ids.append(s.path.name)
    feats = image_features(images, marks) if images else np.zeros((0, 768 + 2048), np.float32)
    return {"files": np.array(ids), "features": feats, "failed": np.array(failed)}


def celeba_features(root: Path | str, work: Path | str = WORK, limit: int | None = None, chunk: int = 200,
                    log=print) -> tuple[list, np.ndarray, list]:
    """(file names, (N, D) features, failures) of the ``probe-train`` and ``probe-val`` images
    among the first ``limit`` CelebA files (all when None) in which a face is found, computed in
    chunks of files that are cached as they finish (an interrupted extraction resumes)."""

    samples = list(get_dataset("celeba", root, "all"))[:limit]
    out = _cache_dir(Path(work))
    out.mkdir(parents=True, exist_ok=True)
    files, feats, failed = [], [], []
    t0, n_new = time.time(), 0
    for k in range(0, len(samples), chunk):
        part = samples[k:k + chunk]
        f = out / f"{part[0].path.stem}-{part[-1].path.stem}.npz"
        if not f.is_file():
            res = _extract_chunk(part)
            tmp = f.with_suffix(".tmp.npz")
            np.savez(tmp, **res)
            tmp.replace(f)  # a chunk is either whole or absent
            n_new += len(part)
            log(f"features {k + len(part)}/{len(samples)} files ({(time.time() - t0) / n_new:.2f} s/file)")
        with np.load(f) as z:
            files += z["files"].tolist()
            feats.append(z["features"])
            failed += z["failed"].tolist()
    return files, np.concatenate(feats), failed


# -- the probes ----------------------------------------------------------------------------------
@dataclass
class Probes:
    """Linear probes on standardised features: ``logit = ((x - mean) / std) @ weight.T + bias``."""

    weight: np.ndarray  # (A, D)
    bias: np.ndarray  # (A,)
    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)
    attributes: list[str]
    used: list[str]
    provenance: dict

    def logits(self, features: np.ndarray) -> np.ndarray:
        """(N, D) features -> (N, A) logits (positive = the attribute is present).

        Example:
            >>> p = Probes(np.eye(2), np.zeros(2), np.ones(2), np.full(2, 2.0), ["a", "b"], ["a"], {})
            >>> p.logits(np.array([[3.0, -1.0]])).tolist()
            [[1.0, -1.0]]
        """
        x = (np.asarray(features, np.float64) - self.mean) / self.std
        return x @ self.weight.T.astype(np.float64) + self.bias

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.logits(features) > 0

    def index(self, name: str) -> int:
        return self.attributes.index(name)


def save_probes(out: Path, weight, bias, mean, std, attributes, provenance: dict) -> dict:
    from safetensors.numpy import save_file

    st = out.with_suffix(".safetensors")
    st.parent.mkdir(parents=True, exist_ok=True)
    f32 = lambda a: np.ascontiguousarray(a, np.float32)  # noqa: E731
    save_file({"weight": f32(weight), "bias": f32(bias), "mean": f32(mean), "std": f32(std)}, str(st),
              metadata={"format_version": FORMAT_VERSION, "attributes": " ".join(attributes)})
    provenance = {**provenance, "format_version": FORMAT_VERSION, "attributes": list(attributes),
                  "weights_file": st.name, "weights_sha256": file_sha256(st)}
    out.with_suffix(".json").write_text(json.dumps(provenance, indent=1) + "\n")
    return provenance


@functools.lru_cache(maxsize=4)
def load_probes(path: str | None = None) -> Probes:
    """The committed probes (``<path>.safetensors`` + ``<path>.json``), refused unless the weights
    file's sha256 is the one the JSON recorded. No pickle is involved."""
    from safetensors import safe_open

    base = Path(path) if path else DEFAULT_OUT
    meta_f, st = base.with_suffix(".json"), base.with_suffix(".safetensors")
    if not meta_f.is_file() or not st.is_file():
        raise FileNotFoundError(f"attribute probes {st} / {meta_f} not found: train them with "
                                "`python -m bench.cli.attribute_probes --celeba DIR`")
    meta = json.loads(meta_f.read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{meta_f}: format version {meta.get('format_version')}, expected {FORMAT_VERSION}")
    if file_sha256(st) != meta["weights_sha256"]:
        raise ValueError(f"{st}: sha256 differs from the one {meta_f.name} recorded (corrupt or edited file)")
    with safe_open(str(st), framework="numpy") as f:
        arr = {k: f.get_tensor(k) for k in ("weight", "bias", "mean", "std")}
    return Probes(arr["weight"].astype(np.float64), arr["bias"].astype(np.float64), arr["mean"].astype(np.float64),
                  arr["std"].astype(np.float64), list(meta["attributes"]), list(meta["used"]), meta)


def balanced_accuracy(truth: np.ndarray, pred: np.ndarray) -> float:
    """Mean of the recall of each class present in ``truth``.

    Example:
        >>> balanced_accuracy(np.array([1, 1, 1, 0]), np.array([1, 1, 0, 0]))
        0.8333333333333333
    """
    truth, pred = np.asarray(truth, bool), np.asarray(pred, bool)
    recalls = [float((pred[truth == c] == c).mean()) for c in (False, True) if (truth == c).any()]
    return float(np.mean(recalls))


def fit_logistic(x: np.ndarray, y: np.ndarray, c, tol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced L2 logistic regression of every column of ``y`` (N, A) at once: per column,
    scikit-learn's ``LogisticRegression(C=c, class_weight="balanced")`` objective
    ``0.5 |w|^2 + C sum_i s_i log(1 + exp(-t_i (x_i w + b)))`` (``s_i = N / (2 N_class(i))``,
    bias unpenalised), minimised by full-batch L-BFGS in float64. The columns are independent
    problems; solving them as one matrix product is what makes a cross-validated fit of 40
    attributes on 6,000 x 2,048 features affordable on a CPU (one scikit-learn fit per attribute
    and C costs ~40 x more matrix-vector passes). Returns (weights (A, D), biases (A,)).

    Example (the same solution as scikit-learn's):
        >>> from sklearn.linear_model import LogisticRegression
        >>> rng = np.random.default_rng(0); x = rng.normal(size=(200, 5)); y = (x[:, :2] + rng.normal(size=(200, 2))) > 0.8
        >>> w, b = fit_logistic(x, y, [0.1, 0.01])
        >>> ref = LogisticRegression(C=0.01, class_weight="balanced", tol=1e-10, max_iter=10000).fit(x, y[:, 1])
        >>> bool(np.abs(w[1] - ref.coef_[0]).max() < 1e-4 and abs(b[1] - ref.intercept_[0]) < 1e-4)
        True
    """
    import torch

    xt = torch.from_numpy(np.asarray(x, np.float64))
    yt = torch.from_numpy(np.asarray(y, bool))
    n, a = yt.shape
    pos = yt.double().sum(0).clamp(min=1)
    s = torch.where(yt, n / (2 * pos), n / (2 * (n - pos).clamp(min=1)))  # balanced class weights
    t = yt.double() * 2 - 1
    reg = 1.0 / (2 * torch.as_tensor(np.broadcast_to(np.asarray(c, np.float64), (a,)).copy()) * n)
    w = torch.zeros(xt.shape[1], a, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(a, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=2000, tolerance_grad=tol, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        # the objective divided by C * N: the same minimiser, gradients of order one
        loss = (s * torch.nn.functional.softplus(-t * (xt @ w + b))).mean(0) + reg * (w * w).sum(0)
        loss = loss.sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy().T.copy(), b.detach().numpy().copy()


def principal_axes(x: np.ndarray, k: int) -> np.ndarray:
    """(k, D) orthonormal leading principal axes of centred ``x`` (N, D).

    Example:
        >>> x = np.random.default_rng(0).normal(size=(500, 3)) * [5.0, 1.0, 0.1]
        >>> np.abs(principal_axes(x - x.mean(0), 1)).round(2).tolist()
        [[1.0, 0.0, 0.0]]
    """
    vals, vecs = np.linalg.eigh(x.T @ x / len(x))
    return vecs[:, np.argsort(vals)[::-1][:k]].T.copy()


def select_c(x: np.ndarray, y: np.ndarray, groups, grid=C_GRID, folds: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``y``: the C of ``grid`` with the best mean balanced accuracy over
    identity-grouped folds (a person's images never straddle a fold). Returns (C per column,
    (len(grid), A) CV scores)."""
    from sklearn.model_selection import GroupKFold

    scores = np.zeros((len(grid), y.shape[1]))
    splits = list(GroupKFold(folds).split(x, y[:, 0], groups))
    for k, c in enumerate(grid):
        for tr, va in splits:
            w, b = fit_logistic(x[tr], y[tr], c)
            pred = x[va] @ w.T + b > 0
            scores[k] += [balanced_accuracy(y[va, j], pred[:, j]) for j in range(y.shape[1])]
    scores /= len(splits)
    return np.asarray(grid)[scores.argmax(0)], scores


def train(celeba: Path, out: Path, work: Path, seed: int = SEED, command: str = "", limit: int | None = None,
          log=print) -> dict:
    import sklearn
    import torch

    names, attrs = read_celeba_attributes(Path(celeba) / "list_attr_celeba.txt")
    files, feats, failed = celeba_features(celeba, work, limit, log=log)
    split_of = {s.path.name: CelebA.split_of(s.identity) for s in CelebA(celeba, "all")}
    ident = {s.path.name: s.identity for s in CelebA(celeba, "all")}
    split = np.array([split_of[f] for f in files])
    y = np.stack([attrs[f] for f in files])
    tr, va = split == "probe-train", split == "probe-val"
    mean, std = feats[tr].astype(np.float64).mean(0), feats[tr].astype(np.float64).std(0) + 1e-6
    x = (feats.astype(np.float64) - mean) / std
    groups = np.array([ident[f] for f in files])[tr]
    t0 = time.time()
    axes = principal_axes(x[tr], N_COMPONENTS)
    z = x @ axes.T
    c_best, cv = select_c(z[tr], y[tr], groups)
    w_z, bias = fit_logistic(z[tr], y[tr], c_best)
    weight = w_z @ axes  # folded back: the saved probes read the standardised D-d features
    log(f"fitted {len(names)} probes x {len(C_GRID)} C x 3 folds in {time.time() - t0:.0f} s")
    pred = x[va] @ weight.T + bias > 0
    table = {}
    for a, name in enumerate(names):
        table[name] = {"balanced_accuracy": round(balanced_accuracy(y[va, a], pred[:, a]), 4), "C": float(c_best[a]),
                       "cv_balanced_accuracy": [round(float(v), 4) for v in cv[:, a]],
                       "positives_train": int(y[tr, a].sum()), "positives_val": int(y[va, a].sum())}
        log(f"{name:22s} val balanced accuracy {table[name]['balanced_accuracy']:.3f} (C={c_best[a]:g})")
    used = [n for n in names if table[n]["balanced_accuracy"] >= USE_THRESHOLD]
    n_split = {s: int((split == s).sum()) for s in PROBE_SPLITS}
    provenance = {
        "command": command, "seed": seed, "data": str(celeba), "split_rule": CelebA.SPLIT_RULE,
        "files_read": f"the first {limit} files of img_align_celeba/ in name order" if limit else "every file",
        "images_with_face": n_split, "images_without_face": len(failed),
        "people": {s: len({ident[f] for f, sp in zip(files, split) if sp == s}) for s in n_split},
        "extractor": EXTRACTOR, "extractor_sha256": extractor_sha256(),
        "features": "Inception-v3 on the whole image resized to 299 with PIL bicubic (FID's pass); the mean "
                    f"of {GRID}x{GRID} bilinear samples of the aligned face square (kpdp.faces.geometry."
                    f"alignment_matrix) in each of the maps {', '.join(FEATURE_MAPS)} (768 + 2048)",
        "face_finder": _finder_version(), "grid": GRID, "feature_maps": list(FEATURE_MAPS),
        "model": "per attribute: standardised features (probe-train mean/std), L2 logistic regression with "
                 "class_weight=balanced (scikit-learn's objective, solved by fit_logistic: torch L-BFGS, float64) on "
                 f"the {N_COMPONENTS} leading principal components of standardised probe-train features, folded "
                 "back into D-d weights; "
                 "C chosen per attribute by 3-fold identity-grouped CV (GroupKFold) on probe-train",
        "c_grid": list(C_GRID), "torch": torch.__version__, "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "use_threshold": USE_THRESHOLD, "balanced_accuracy_on": "probe-val (people disjoint from probe-train)",
        "per_attribute": table, "used": used,
    }
    return save_probes(Path(out), weight, bias, mean, std, names, provenance)
