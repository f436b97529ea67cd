"""``recon-learned``: knows the method and has data to adapt; learns a linear inverse of the method
on identity-disjoint training people (anonymised -> original), applies it to every probe, then
recognises the reconstruction with the off-the-shelf recognizer against the clean originals.

Two stages, each predicting the *residual* ``original − anonymised`` by ridge regression whose
strength is chosen on held-out training people (:data:`FOLDS` identity folds):

1. :class:`LocalFilter`: one :data:`LOCAL` px square filter, shared by every position and channel
   of the face region, at the image's own resolution: a Wiener filter learned from pairs instead
   of derived from a known operator (it can undo some blur; it cannot know a pixelation's grid);
2. :class:`LinearInverse`: on a :data:`CROP` px square aligned by the original's five landmark
   points (eye centres, nose tip, mouth corners: the harness embeds every face at the original's
   location), the residual the first stage left, from the crop's first :data:`COMPONENTS`
   principal components: what a face prior adds where the local filter has nothing to work with.

Why residuals: a method that changes nothing (``original``) has a zero residual, so the learned
inverse of it is exactly the identity and the attacker passes the sanity check's originals row;
predicting the whole crop from a few hundred principal components would smooth every face, also
unprotected ones. Why linear: it trains in seconds on one CPU core on the few hundred training
images a run holds, and what a linear map recovers is a floor on what a learned inverse can do,
not a ceiling.

Training images are those the ``semi-*`` attackers use (:mod:`bench.attackers.data`: LFW devtrain
people for LFW, the sample's devtrain people for the embedded sample, CelebA ``probe-train`` for
CelebA ``eval``), made again by :mod:`bench.run.recon`; a data set without a training
split is attacked by two identity folds of its own probes. A model is cached per (method spec, ε,
training images, version, hyper-parameters) as ``.npz`` (no pickle) under
``$KPDP_BENCH_CACHE/weights/recon-learned``.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

from bench.attackers.registry import Attacker, register_attacker
from bench.attackers.semi_linear import identity_folds
from bench.store.cache import default_cache_dir
from kpdp.faces.analyze import face_from_landmarks
from kpdp.faces.geometry import TEMPLATE_5, five_points, umeyama
from kpdp.method import face_box

NAME = "recon-learned"
VERSION = "1"
CROP = 64  # px: eye distance ~16 px, what a few hundred training faces can fit
ZOOM = 1.3  # into kpdp's 5-point template (made for context around a mask): brows to chin fill the crop
COMPONENTS = 200  # principal components of the anonymised crops, at most (N - 1 with fewer images)
ALPHAS = np.logspace(-3, 2, 11)  # ridge strengths: x the crop inputs' mean eigenvalue; x 1e-3 mean square (filter)
FOLDS = 3  # identity folds that choose the ridge strength
FEATHER = 0.15  # of the crop: the residual fades to zero over this border
MIN_PEOPLE = 2  # training people below which nothing is learned (then: the identity)
LOCAL = 15  # px: the local filter's support (blur's kernel is up to 21 px; a wider filter costs k⁴)
POSITIONS = 400  # pixels per training image that the local filter learns from (x 3 channels)
REGION_GROW = 0.1  # of the face region's size: where the local filter's residual is added, feathered


@register_attacker
class ReconLearned(Attacker):
    """knows the method and has data to adapt: learns a linear inverse (a deconvolution filter, then
    ridge regression on an aligned face crop's principal components) on identity-disjoint training
    people, applies it to every method, then recognises the reconstruction against the clean
    originals (runs on a finished run: `python -m bench.cli.recon --run RUN_DIR`, or `bench
    run --attackers ...,recon-learned`)."""

    name = NAME
    version = VERSION
    gallery = "original"
    trains = True
    default = False  # remakes every anonymised and training image: run on demand
    pixels = True

    def fit(self, train):
        raise RuntimeError(f"the {NAME} attacker learns from the anonymised images, which the harness does not keep: "
                           "run `python -m bench.cli.recon --run RUN_DIR` on the finished run (or name it "
                           "in `bench run --attackers`, which does that after the grid)")


# --- the aligned crop ----------------------------------------------------------------------------

def _template() -> np.ndarray:
    return (0.5 + (TEMPLATE_5 - 0.5) * ZOOM) * CROP


def alignment(landmarks: np.ndarray) -> np.ndarray:
    """2x3 similarity from image pixels to the aligned crop (five points of the 68 landmarks)."""
    return umeyama(five_points(landmarks), _template())


def aligned_crop(image: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The ``CROP x CROP x 3`` float32 crop (0-255) of ``image`` under the alignment ``m``; a
    face larger than the crop is low-passed first (bilinear sampling alone would alias)."""
    image = np.asarray(image, np.float32)
    shrink = 1.0 / np.sqrt(abs(np.linalg.det(m[:, :2])))  # image pixels per crop pixel
    if shrink > 1.25:
        image = cv2.GaussianBlur(image, (0, 0), 0.5 * shrink)
    return cv2.warpAffine(image, m, (CROP, CROP), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def _feather() -> np.ndarray:
    """Weight of the residual over the crop: 1 inside, a cosine ramp to 0 over the border."""
    n = max(1, int(round(FEATHER * CROP)))
    ramp = np.ones(CROP, np.float32)
    edge = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
    ramp[:n], ramp[-n:] = edge, edge[::-1]
    return np.outer(ramp, ramp)


def add_residual(image: np.ndarray, residual: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``image`` + the crop-space ``residual`` warped back (feathered; zero outside the crop), uint8
    (rounded once, at the end)."""
    h, w = image.shape[:2]
    weighted = residual * _feather()[..., None]
    back = cv2.warpAffine(weighted.astype(np.float32), cv2.invertAffineTransform(m), (w, h),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return np.clip(np.rint(image.astype(np.float32) + back), 0, 255).astype(np.uint8)


# --- the model -----------------------------------------------------------------------------------

class LinearInverse:
    """Ridge regression from the principal components of anonymised crops to the residual
    ``original − anonymised`` (flattened crops, float32, 0-255)."""

    def fit(self, anonymised: np.ndarray, original: np.ndarray, identities, seed: int = 0) -> "LinearInverse":
        t0 = time.perf_counter()
        x = anonymised.reshape(len(anonymised), -1).astype(np.float32)
        r = original.reshape(len(original), -1).astype(np.float32) - x
        ids = np.asarray(identities)
        self.mean_x, self.mean_r = x.mean(0), r.mean(0)
        k = int(min(COMPONENTS, len(x) - 1))
        if len(np.unique(ids)) < MIN_PEOPLE or k < 1:
            self.basis = np.zeros((0, x.shape[1]), np.float32)
            self.weights = np.zeros((0, r.shape[1]), np.float32)
            self.info = {"components": 0, "alpha": None, "images": len(x), "note": "too few training people: identity",
                         "seconds": round(time.perf_counter() - t0, 2)}
            return self
        from sklearn.utils.extmath import randomized_svd

        # the top k directions only: a full SVD of a few thousand 12k-pixel crops takes minutes
        _, s, vt = randomized_svd(x - self.mean_x, k, n_iter=4, random_state=seed)
        self.basis = vt.astype(np.float32)
        z = (x - self.mean_x) @ self.basis.T
        scale = float((s[:k] ** 2).mean() / len(x))  # mean eigenvalue: alphas are relative to it
        errors = _heldout_errors(z, r, ids, ALPHAS * scale * len(x), seed)
        best = int(np.argmin(errors))
        alpha = float(ALPHAS[best] * scale * len(x))
        self.weights = _ridge(z, r - self.mean_r, alpha)
        zero = float(((r - self.mean_r) ** 2).mean())  # predicting the mean residual only
        self.info = {"components": k, "alpha_relative": float(ALPHAS[best]), "images": len(x),
                     "people": int(len(np.unique(ids))), "heldout_mse": float(errors[best]),
                     "heldout_mse_mean_residual": zero, "seconds": round(time.perf_counter() - t0, 2)}
        return self

    def residual(self, anonymised: np.ndarray) -> np.ndarray:
        """Predicted ``original − anonymised`` crops, shaped as ``anonymised``."""
        x = anonymised.reshape(len(anonymised), -1).astype(np.float32)
        if len(self.basis) == 0:
            return np.zeros_like(anonymised, np.float32)
        z = (x - self.mean_x) @ self.basis.T
        return (z @ self.weights + self.mean_r).reshape(anonymised.shape)

    def arrays(self) -> dict:
        return {"mean_x": self.mean_x, "mean_r": self.mean_r, "basis": self.basis, "weights": self.weights}

    @classmethod
    def from_arrays(cls, arrays: dict, info: dict) -> "LinearInverse":
        out = cls()
        for k in ("mean_x", "mean_r", "basis", "weights"):
            setattr(out, k, np.asarray(arrays[k], np.float32))
        out.info = info
        return out


def _ridge(z: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    zz = z.T @ z + alpha * np.eye(z.shape[1], dtype=z.dtype)
    return np.linalg.solve(zz, z.T @ y).astype(np.float32)


def _heldout_errors(z, r, ids, alphas, seed: int) -> np.ndarray:
    """Mean squared residual error (per pixel and channel) of each ridge strength on held-out
    people (identity folds)."""
    folds = identity_folds(ids, FOLDS, seed)
    errors = np.zeros(len(alphas))
    for f in range(FOLDS):
        tr, te = folds != f, folds == f
        if tr.sum() < 2 or te.sum() < 1:
            continue
        mr = r[tr].mean(0)
        mz = z[tr].mean(0)
        u, s, vt = np.linalg.svd(z[tr] - mz, full_matrices=False)
        uty = u.T @ (r[tr] - mr)
        zt = (z[te] - mz) @ vt.T
        for i, a in enumerate(alphas):  # one SVD, every alpha
            w = (s / (s ** 2 + a))[:, None] * uty
            errors[i] += float(((zt @ w + mr - r[te]) ** 2).sum())
    return errors / r.size


# --- the local stage: a learned deconvolution at the image's own resolution ----------------------

class LocalFilter:
    """One ``LOCAL x LOCAL`` linear filter (and an offset), shared by the three channels and every
    position of the face region, from the anonymised image to the residual ``original −
    anonymised``: what a Wiener filter is, learned from pairs instead of derived from a known
    operator. Fitted by ridge regression on pixels sampled inside the training faces' regions, the
    strength chosen on held-out people from sufficient statistics (no refit per strength)."""

    def fit(self, anonymised_images, original_images, landmarks, identities, seed: int = 0) -> "LocalFilter":
        t0 = time.perf_counter()
        ids = np.asarray(identities)
        folds = identity_folds(ids, FOLDS, seed) if len(np.unique(ids)) >= FOLDS else np.zeros(len(ids), int)
        dim = LOCAL * LOCAL + 1
        xx, xy, yy = np.zeros((FOLDS, dim, dim)), np.zeros((FOLDS, dim)), np.zeros(FOLDS)
        counts = np.zeros(FOLDS)
        rng = np.random.default_rng(seed)
        for anon, orig, lm, f in zip(anonymised_images, original_images, landmarks, folds):
            x, y = _samples(anon, orig, lm, rng)
            xx[f] += x.T @ x
            xy[f] += x.T @ y
            yy[f] += float(y @ y)
            counts[f] += len(y)
        scale = float(np.trace(xx.sum(0)) / dim)
        errors = np.zeros(len(ALPHAS))
        for f in range(FOLDS):
            if counts[f] == 0 or counts.sum() == counts[f]:
                continue
            a_tr, b_tr = xx.sum(0) - xx[f], xy.sum(0) - xy[f]
            for i, alpha in enumerate(ALPHAS):
                w = np.linalg.solve(a_tr + alpha * scale * 1e-3 * np.eye(dim), b_tr)
                errors[i] += yy[f] - 2 * w @ xy[f] + w @ xx[f] @ w
        best = int(np.argmin(errors)) if errors.any() else len(ALPHAS) // 2
        a, b = xx.sum(0), xy.sum(0)
        self.weights = np.linalg.solve(a + ALPHAS[best] * scale * 1e-3 * np.eye(dim), b).astype(np.float32)
        n = max(counts.sum(), 1)
        self.info = {"size": LOCAL, "alpha_relative": float(ALPHAS[best]), "pixels": int(n),
                     "heldout_mse": float(errors[best] / n), "mse_unchanged": float(yy.sum() / n),
                     "seconds": round(time.perf_counter() - t0, 2)}
        return self

    def residual(self, image: np.ndarray) -> np.ndarray:
        """The predicted residual over the whole image (float32, H x W x 3)."""
        kernel = self.weights[:-1].reshape(LOCAL, LOCAL)
        image = np.asarray(image, np.float32)
        return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT101) + self.weights[-1]

    def apply(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """``image`` with the predicted residual added inside the face region (feathered), float32."""
        weight = region_weight(image.shape, landmarks)
        return np.asarray(image, np.float32) + self.residual(image) * weight[..., None]


def region_box(shape, landmarks: np.ndarray) -> np.ndarray:
    """The baselines' face region (kpdp.method.face_box: the landmarks' box, forehead, margin)."""
    return face_box(face_from_landmarks(landmarks), shape)


def region_weight(shape, landmarks: np.ndarray) -> np.ndarray:
    """1 inside the face region grown by :data:`REGION_GROW`, fading to 0 over its border."""
    box = region_box(shape, landmarks)
    grow = REGION_GROW * max(box[2] - box[0], box[3] - box[1])
    h, w = shape[:2]
    x0, y0 = int(max(0, box[0] - grow)), int(max(0, box[1] - grow))
    x1, y1 = int(min(w, box[2] + grow)), int(min(h, box[3] + grow))
    mask = np.zeros((h, w), np.float32)
    mask[y0:y1, x0:x1] = 1.0
    r = max(1, int(grow))
    return cv2.GaussianBlur(mask, (2 * r + 1, 2 * r + 1), r / 2.0) * mask


def _samples(anon, orig, landmarks, rng) -> tuple[np.ndarray, np.ndarray]:
    """(patches with a constant 1, residuals) at :data:`POSITIONS` random pixels x 3 channels of the
    face region."""
    p = LOCAL // 2
    x0, y0, x1, y1 = (int(v) for v in region_box(anon.shape, landmarks))
    ys = rng.integers(y0, max(y0 + 1, y1), POSITIONS)
    xs = rng.integers(x0, max(x0 + 1, x1), POSITIONS)
    padded = cv2.copyMakeBorder(np.asarray(anon, np.float32), p, p, p, p, cv2.BORDER_REFLECT101)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (LOCAL, LOCAL), axis=(0, 1))  # H, W, 3, k, k
    x = windows[ys, xs].reshape(-1, LOCAL * LOCAL)  # (positions * 3 channels, k²)
    y = (np.asarray(orig, np.float32) - np.asarray(anon, np.float32))[ys, xs].reshape(-1)
    return np.hstack([x, np.ones((len(x), 1), np.float32)]).astype(np.float64), y.astype(np.float64)


# --- training and applying on images --------------------------------------------------------------

class ReconModel:
    """The local filter, then the PCA ridge on the aligned crop of what it made."""

    def __init__(self, local: LocalFilter, crop: LinearInverse):
        self.local, self.crop = local, crop
        self.info = {"local": local.info, "crop": crop.info}

    def is_identity(self) -> bool:
        """Learned from a method that changes nothing: every weight and offset is zero."""
        return not (np.any(self.local.weights) or np.any(self.crop.weights) or np.any(self.crop.mean_r))

    def reconstruct(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        first = self.local.apply(image, landmarks)
        m = alignment(landmarks)
        return add_residual(first, self.crop.residual(aligned_crop(first, m)[None])[0], m)

    def arrays(self) -> dict:
        return {"local_weights": self.local.weights, **{f"crop_{k}": v for k, v in self.crop.arrays().items()}}

    @classmethod
    def from_arrays(cls, arrays: dict, info: dict) -> "ReconModel":
        local = LocalFilter()
        local.weights, local.info = np.asarray(arrays["local_weights"], np.float32), info.get("local", {})
        crop = LinearInverse.from_arrays({k[5:]: v for k, v in arrays.items() if k.startswith("crop_")},
                                         info.get("crop", {}))
        out = cls(local, crop)
        out.info = info
        return out


def crops(images, landmarks) -> np.ndarray:
    """(N, CROP, CROP, 3) aligned crops of ``images`` at the faces' ``landmarks``."""
    return np.stack([aligned_crop(im, alignment(lm)) for im, lm in zip(images, landmarks)]) if len(images) else \
        np.zeros((0, CROP, CROP, 3), np.float32)


def train(anonymised_images, original_images, landmarks, identities, seed: int = 0) -> ReconModel:
    """The two stages fitted on pairs of images (the same face location in both): the local filter
    first, then the crop model on the local filter's output."""
    t0 = time.perf_counter()
    local = LocalFilter().fit(anonymised_images, original_images, landmarks, identities, seed)
    first = [local.apply(im, lm) for im, lm in zip(anonymised_images, landmarks)]
    crop = LinearInverse().fit(crops(first, landmarks), crops(original_images, landmarks), identities, seed)
    model = ReconModel(local, crop)
    model.info["seconds"] = round(time.perf_counter() - t0, 2)
    model.info["images"] = len(anonymised_images)
    return model


def reconstruct(model: ReconModel, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The anonymised ``image`` after both stages (uint8)."""
    return model.reconstruct(image, landmarks)


# --- the cache ------------------------------------------------------------------------------------

def hyper() -> dict:
    return {"crop": CROP, "zoom": ZOOM, "components": COMPONENTS, "alphas": [float(a) for a in ALPHAS],
            "folds": FOLDS, "feather": FEATHER, "local": LOCAL, "positions": POSITIONS, "region_grow": REGION_GROW}


def model_key(method: str, eps_key: str, seed: int, train_digests: list[tuple[str, str]],
              fold: int | None = None) -> dict:
    """What a model depends on; its sha256 names the file."""
    images = hashlib.sha256("\n".join(f"{i} {d}" for i, d in sorted(train_digests)).encode()).hexdigest()
    return {"attacker": NAME, "version": VERSION, "method": method, "eps": eps_key, "seed": int(seed), "fold": fold,
            "train_images": len(train_digests), "train_images_sha256": images, "hyper": hyper()}


def key_id(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def model_path(key: dict) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_.=" else "_" for ch in key["method"])
    return default_cache_dir() / "weights" / NAME / f"{safe}-{key['eps'] or 'none'}-{key_id(key)}.npz"


def save_model(path: Path, model: "ReconModel", key: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **model.arrays(), key=np.array(json.dumps(key, sort_keys=True)),
             info=np.array(json.dumps(model.info)))
    os.replace(tmp, path)


def load_model(path: Path, key: dict) -> "ReconModel | None":
    """The cached model of ``key``, or None (absent, made for another key, or unreadable)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if json.loads(str(z["key"])) != json.loads(json.dumps(key, sort_keys=True)):
                return None
            return ReconModel.from_arrays({k: z[k] for k in z.files if k not in ("key", "info")},
                                          {**json.loads(str(z["info"])), "cached": True})
    except (OSError, ValueError, KeyError):
        return None
