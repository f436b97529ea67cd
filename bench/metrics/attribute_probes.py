"""Attribute probes: one logistic regression per CelebA attribute on frozen Inception features of
an aligned face crop (``../shared/docs/metrics.md``, *Attributes kept*).

The extractor is the FID Inception-v3 (TensorFlow 2015-12-05 weights, 2048-d pool features), not
one of the re-identification recognizers. Its input is the project's aligned crop
(:func:`kpdp.faces.geometry.alignment_matrix`: the five-point similarity from the 68 landmarks of
:class:`kpdp.faces.analyze.FaceFinder`, a template that keeps the jaw, the brows and some
forehead), drawn at :data:`CROP_SIZE` pixels: about the native resolution of CelebA-10k's
89 x 109 faces, so that a 250 x 250 LFW face is brought down to the resolution the probes were
trained on instead of the probes meeting sharper faces than they ever saw.

Training (``python -m bench.metrics.attribute_probes --celeba DIR --out bench/assets/attribute_probes``):
CelebA's identity-disjoint splits (:class:`kpdp.datasets.CelebA`): fit on ``probe-train``,
balanced accuracy on ``probe-val`` (people never seen in training); only attributes with balanced
accuracy >= :data:`USE_THRESHOLD` are *used* (reported by the metric group). Features are
standardised, classes balanced, the inverse regularisation strength chosen per attribute by
identity-grouped cross-validation inside ``probe-train``. The features of the ~8,000 images of
the two probe splits are cached under ``work-data/`` (~6 minutes per thousand images on one CPU
thread), keyed by the extractor's and the face finder's versions; ``eval`` images are never read.

Writes ``<out>.safetensors`` (``weight`` (40, 2048), ``bias`` (40,), feature ``mean`` and ``std``
(2048,), float32) and ``<out>.json`` (provenance, per-attribute accuracy, the used attributes,
the safetensors file's sha256, which :func:`load_probes` checks).
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.metrics.fid import _model_path, inception_features
from kpdp.datasets import CelebA, get_dataset, load_image
from kpdp.faces.analyze import FaceFinder, NoFaceError
from kpdp.faces.geometry import align_crop, alignment_matrix
from kpdp.faces.registry import file_sha256

ROOT = Path(__file__).resolve().parents[2]
ASSETS = Path(__file__).resolve().parents[1] / "assets"  # bench/assets
DEFAULT_OUT = ASSETS / "attribute_probes"
WORK = ROOT / "work-data" / "attribute_features"
CROP_SIZE = 96
USE_THRESHOLD = 0.80
EXTRACTOR = "inception-2015-12-05"
FORMAT_VERSION = "1"
C_GRID = (0.0001, 0.0003, 0.001, 0.003, 0.01)  # inverse L2 strength (scikit-learn's C)
# The probes are fitted on the leading principal components of the standardised features and
# folded back into 2048-d weights: 8x cheaper fits, so that a cross-validated C per attribute is
# affordable on a shared CPU; L2 shrinks the low-variance directions left out anyway.
N_COMPONENTS = 256
SEED = 0
PROBE_SPLITS = ("probe-train", "probe-val")  # the eval split's images are never read here


def attribute_crop(image: np.ndarray, landmarks: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The probes' input: the project's aligned face crop, ``size x size`` RGB ``uint8``.

    Example:
        >>> lm = np.random.default_rng(0).uniform(20, 80, (68, 2))
        >>> attribute_crop(np.zeros((100, 100, 3), np.uint8), lm).shape
        (96, 96, 3)
    """

    return align_crop(image, alignment_matrix(landmarks, size), size)


def crop_features(crops: list[np.ndarray], device: str = "cpu", batch: int = 16) -> np.ndarray:
    """(N, 2048) float32 Inception pool features of aligned crops (resized to 299 as FID does)."""

    return inception_features(list(crops), device, batch).astype(np.float32)


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
    return Path(work) / f"{EXTRACTOR}-{extractor_sha256()[:12]}-crop{CROP_SIZE}-finder-{finder_v}"


@functools.lru_cache(maxsize=None)
def _finder_version() -> str:
    return _finder().version


@functools.lru_cache(maxsize=None)
def _finder():
    return FaceFinder()


def _extract_chunk(samples) -> dict:
    crops, ids, failed = [], [], []
    for s in samples:
        if CelebA.split_of(s.identity) not in PROBE_SPLITS:
            continue
        try:
            image = load_image(s.path)
            face = _finder().primary(image)
        except (NoFaceError, ValueError) as exc:
            failed.append(f"{s.path.name}: {exc}")
            continue
        crops.append(attribute_crop(image, face.landmarks))
        ids.append(s.path.name)
    feats = crop_features(crops) if crops else np.zeros((0, 2048), np.float32)
    return {"files": np.array(ids), "features": feats, "failed": np.array(failed)}


def celeba_features(root: Path | str, work: Path | str = WORK, limit: int | None = None, chunk: int = 200,
                    log=print) -> tuple[list, np.ndarray, list]:
    """(file names, (N, 2048) features, failures) of the ``probe-train`` and ``probe-val`` images
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
                                "`python -m bench.metrics.attribute_probes --celeba DIR`")
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
    weight = w_z @ axes  # folded back: the saved probes read the standardised 2048-d features
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
        "features": "Inception-v3 2048-d pool of the aligned crop (kpdp.faces.geometry.alignment_matrix, "
                    f"{CROP_SIZE} px, resized to 299 with PIL bicubic)",
        "face_finder": _finder_version(), "crop_size": CROP_SIZE,
        "model": "per attribute: standardised features (probe-train mean/std), L2 logistic regression with "
                 "class_weight=balanced (scikit-learn's objective, solved by fit_logistic: torch L-BFGS, float64) on "
                 f"the {N_COMPONENTS} leading principal components of standardised probe-train features, folded "
                 "back into 2048-d weights; "
                 "C chosen per attribute by 3-fold identity-grouped CV (GroupKFold) on probe-train",
        "c_grid": list(C_GRID), "torch": torch.__version__, "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "use_threshold": USE_THRESHOLD, "balanced_accuracy_on": "probe-val (people disjoint from probe-train)",
        "per_attribute": table, "used": used,
    }
    return save_probes(Path(out), weight, bias, mean, std, names, provenance)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.metrics.attribute_probes", description=__doc__.split("\n\n")[0])
    p.add_argument("--celeba", required=True, help="CelebA folder (img_align_celeba/, identity_CelebA.txt, "
                                                    "list_attr_celeba.txt)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output path without suffix (.safetensors + .json)")
    p.add_argument("--work", default=str(WORK), help="feature cache folder")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--limit", type=int, default=None, help="read only the first N image files (name order)")
    p.add_argument("--extract-only", action="store_true", help="only compute and cache the features")
    p.add_argument("--threads", type=int, default=1, help="torch threads (extraction is the slow step)")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    log = functools.partial(print, flush=True)
    if a.extract_only:
        files, feats, failed = celeba_features(a.celeba, a.work, a.limit, log=log)
        log(f"{len(files)} images with features, {len(failed)} without a face")
        return 0
    command = "python -m bench.metrics.attribute_probes " + " ".join(argv if argv is not None else sys.argv[1:])
    prov = train(Path(a.celeba), Path(a.out), Path(a.work), a.seed, command, a.limit, log)
    log(f"used ({len(prov['used'])}): {', '.join(prov['used'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
