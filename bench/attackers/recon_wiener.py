"""``recon-wiener``: knows the method's operator and inverts it, then recognises the reconstruction
with the off-the-shelf recognizer against the clean originals (gallery ``original``).

Where the operator is known and linear, the face region of the output is ``y = A x`` (+ rounding
to uint8, + DP-Pix's Laplace noise), with ``A`` separable: ``A x = Ay @ x @ Ax.T`` per channel on a
window of the image, read from the method's own parameters (:func:`degradation`):

* ``blur``, ``blur-strong``, ``blur[sigma=..]``: OpenCV's Gaussian filter of the method's kernel
  size and σ, including its reflected border at the window the method blurred;
* ``pixelate-8``, ``pixelate-16``, ``pixelate[blocks=..]``: the region's box area-averaged to
  ``blocks x blocks`` (OpenCV ``INTER_AREA`` weights), shown as nearest-neighbour blocks;
* ``dppix``: cells of ``b x b`` pixels from the box's corner (partial at the edges) showing their
  mean, with the Laplace noise the budget puts on it (scale from ``b``, ``m`` and ε);
* ``original``: the identity (nothing to invert: the reconstruction is the image).

The reconstruction minimises ``|M∘(A x) − M∘y|² / σ² + |∇x|² / s²`` over the pixels ``M`` the
method replaced, every other pixel fixed to the image (they are the original's): a Wiener-type
regularised least squares with a smoothness prior (``σ²``: the observation noise, uint8 rounding
plus DP-Pix's noise; ``s``: the typical size of a face's pixel-to-pixel step, :data:`PRIOR_STEP`),
solved by conjugate gradients. The spatial form is used instead of a Fourier-domain Wiener filter
because the operator is local (only the mask is blurred, the border is OpenCV's) and the pixels
around the mask are known exactly: they anchor the solution where a periodic FFT would ring.

A method with no known operator (``mask``, ``mask-noise``, ``deepprivacy``, ``kpdp``, plugins) is
*not applicable*: :func:`degradation` returns None and the attacker writes no rows for that cell
(there is nothing to invert; falling back to the image itself would be the ``ignorant`` attacker
under another name). The reconstruction needs the pixels, so the attacker runs on a finished run
(:mod:`bench.run.recon`), like ``semi-finetune``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from baselines.blur import GaussianBlur
from baselines.dppix import DPPix, dppix_noise_scale
from baselines.original import Original
from baselines.pixelate import Pixelate
from bench.attackers.registry import Attacker, register_attacker
from kpdp.method import face_region, mask_bbox

NAME = "recon-wiener"
VERSION = "1"
#: s of the smoothness prior (intensity levels per pixel step), chosen on 12 LFW devtrain faces of the
#: embedded sample by the reconstruction's RMS error inside the mask (blur 20.3 -> 9.6 / 8.3 / 9.8 at
#: s = 8 / 20 / 50; pixelate-8 27.0 -> 21.1 / 21.3 / 23.1; DP-Pix ε 16 27.2 -> 22.2 / 22.3 / 22.3)
PRIOR_STEP = 20.0
QUANTISATION_VAR = 1.0 / 12.0  # variance of rounding to uint8
CG_ITERATIONS = 400


@register_attacker
class ReconWiener(Attacker):
    """knows the method's operator (blur, pixelation, DP-Pix) and inverts it by regularised least
    squares (Wiener-type), then recognises the reconstruction against the clean originals; does not
    apply to methods without a known operator (runs on a finished run: `python -m
    bench.cli.recon --run RUN_DIR`, or `bench run --attackers ...,recon-wiener`)."""

    name = NAME
    version = VERSION
    gallery = "original"
    trains = False
    default = False  # remakes every anonymised image: run on demand
    pixels = True

    def project(self, embeddings):
        raise RuntimeError(f"the {NAME} attacker works on the anonymised images, which the harness does not keep: "
                           "run `python -m bench.cli.recon --run RUN_DIR` on the finished run (or name it "
                           "in `bench run --attackers`, which does that after the grid)")


@dataclass
class Degradation:
    """``y[M] = (Ay @ x @ Ax.T)[M]`` on the window ``box`` = (x0, y0, x1, y1) of the image, per
    channel, observed with noise of variance ``noise_var`` (intensity levels²)."""

    box: tuple[int, int, int, int]
    ay: np.ndarray  # (h, h)
    ax: np.ndarray  # (w, w)
    mask: np.ndarray  # (h, w) bool: the pixels the method replaced
    noise_var: float = QUANTISATION_VAR


# --- the operators ------------------------------------------------------------------------------

def _reflect101(n: int, pad: int) -> np.ndarray:
    """Source index of each of ``n + 2 pad`` padded positions under OpenCV's BORDER_REFLECT_101."""
    idx = np.abs(np.arange(-pad, n + pad))
    period = 2 * (n - 1) if n > 1 else 1
    idx = idx % period if n > 1 else np.zeros_like(idx)
    return np.where(idx > n - 1, period - idx, idx)


def filter_matrix(n: int, taps: np.ndarray) -> np.ndarray:
    """(n, n) matrix of a 1-D correlation with ``taps`` under BORDER_REFLECT_101 (OpenCV's default)."""
    pad = len(taps) // 2
    src = _reflect101(n, pad)
    a = np.zeros((n, n))
    rows = np.arange(n)
    for t, g in enumerate(taps):
        np.add.at(a, (rows, src[rows + t]), g)
    return a


def area_matrix(n: int, cells: int) -> np.ndarray:
    """(cells, n): OpenCV's INTER_AREA weights of a 1-D resize from n to ``cells`` samples."""
    return cv2.resize(np.eye(n), (cells, n), interpolation=cv2.INTER_AREA).T


def nearest_matrix(cells: int, n: int) -> np.ndarray:
    """(n, cells): OpenCV's INTER_NEAREST 1-D resize from ``cells`` to n samples."""
    return cv2.resize(np.eye(cells), (n, cells), interpolation=cv2.INTER_NEAREST).T


def cell_matrix(n: int, b: int) -> np.ndarray:
    """(n, n): every sample replaced by the mean of its ``b``-sample cell (the last cell partial)."""
    cell = np.arange(n) // b
    same = (cell[:, None] == cell[None, :]).astype(float)
    return same / same.sum(1, keepdims=True)


def _embed(n: int, lo: int, block: np.ndarray) -> np.ndarray:
    """``block`` (acting on samples lo..lo+len) as an (n, n) matrix on the whole window."""
    a = np.zeros((n, n))
    a[lo:lo + len(block), lo:lo + len(block)] = block
    return a


def degradation(method, image_shape, face) -> Degradation | None:
    """The operator ``method`` applied to ``face``'s region of an image of ``image_shape``, read
    from the method's parameters; None when it has no known operator. A subclass that overrides
    the anonymising code is not trusted to keep the operator."""
    kind = type(method)
    if kind.anonymize is Original.anonymize:
        return None  # handled by the caller: nothing was replaced
    mask = face_region(face, image_shape, method.region) > 0
    if not mask.any():
        return None
    x0, y0, x1, y1 = mask_bbox(mask.astype(np.uint8))
    H, W = image_shape[:2]
    if kind.anonymize_face is GaussianBlur.anonymize_face:
        k = min(method.max_kernel, max(x1 - x0, y1 - y0))
        k = max(1, k if k % 2 else k - 1)
        p = k // 2
        box = (max(0, x0 - p), max(0, y0 - p), min(W, x1 + p), min(H, y1 + p))  # the window it blurred
        taps = cv2.getGaussianKernel(k, method.sigma).ravel()
        h, w = box[3] - box[1], box[2] - box[0]
        return Degradation(box, filter_matrix(h, taps), filter_matrix(w, taps),
                           mask[box[1]:box[3], box[0]:box[2]])
    # pixel cells: a window around the box so that the prior sees the known pixels next to it
    pad = max(2, (x1 - x0) // 8)
    box = (max(0, x0 - pad), max(0, y0 - pad), min(W, x1 + pad), min(H, y1 + pad))
    h, w = box[3] - box[1], box[2] - box[0]
    oy, ox = y0 - box[1], x0 - box[0]
    if kind.anonymize_face is Pixelate.anonymize_face:
        b = method.blocks
        ay = nearest_matrix(b, y1 - y0) @ area_matrix(y1 - y0, b)
        ax = nearest_matrix(b, x1 - x0) @ area_matrix(x1 - x0, b)
        return Degradation(box, _embed(h, oy, ay), _embed(w, ox, ax), mask[box[1]:box[3], box[0]:box[2]])
    if kind.anonymize_face is DPPix.anonymize_face:
        b = method.b
        noise = 0.0
        if np.isfinite(method.eps):  # discrete Laplace of scale t on a full cell's sum: variance 2 t² / (b²)²
            noise = 2.0 * dppix_noise_scale(method.m, method.eps) ** 2 / float(b * b) ** 2
        return Degradation(box, _embed(h, oy, cell_matrix(y1 - y0, b)), _embed(w, ox, cell_matrix(x1 - x0, b)),
                           mask[box[1]:box[3], box[0]:box[2]], QUANTISATION_VAR + noise)
    return None


def replaces_pixels(method) -> bool:
    """False for ``original``, whose operator is the identity (nothing to reconstruct)."""
    return type(method).anonymize is not Original.anonymize


def applies(method) -> bool:
    """Whether ``method`` has an operator this attacker knows (the identity of ``original`` too)."""
    kind = type(method)
    return (kind.anonymize is Original.anonymize or
            any(kind.anonymize_face is k.anonymize_face for k in (GaussianBlur, Pixelate, DPPix)))


# --- the inverse --------------------------------------------------------------------------------

def _grad_normal(x: np.ndarray) -> np.ndarray:
    """``Dᵀ D x`` of the forward differences along both image axes (free boundary)."""
    out = np.zeros_like(x)
    dv, dh = np.diff(x, axis=0), np.diff(x, axis=1)
    out[:-1] -= dv
    out[1:] += dv
    out[:, :-1] -= dh
    out[:, 1:] += dh
    return out


def invert(y: np.ndarray, d: Degradation, prior_step: float = PRIOR_STEP,
           iterations: int = CG_ITERATIONS) -> np.ndarray:
    """The regularised least-squares estimate (float, same shape) of the window ``y`` (h, w, 3)
    before ``d`` degraded it; pixels outside ``d.mask`` are returned as given."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.linalg import LinearOperator, cg
    from threadpoolctl import threadpool_limits

    y = np.asarray(y, np.float64)
    m = d.mask
    n = int(m.sum())
    lam = d.noise_var / prior_step ** 2

    # the operators are banded (blur) or block-structured (cells): sparse products are ~20x cheaper
    ay, ax = csr_matrix(d.ay), csr_matrix(d.ax)
    ay_t, ax_t = csr_matrix(d.ay.T), csr_matrix(d.ax.T)
    h, w = m.shape

    def separable(left, right, x):  # left @ x @ right.T, per channel of x (h, w, 3)
        t = (left @ x.reshape(h, w * 3)).reshape(h, w, 3)
        t = right @ t.transpose(1, 0, 2).reshape(w, h * 3)
        return t.reshape(w, h, 3).transpose(1, 0, 2)

    def op(x):
        return separable(ay, ax, x)

    def op_t(r):
        return separable(ay_t, ax_t, r)

    def normal(x):  # (Aᵀ M A + λ DᵀD) x
        r = op(x)
        r[~m] = 0.0
        return op_t(r) + lam * _grad_normal(x)

    known = y.copy()
    known[m] = 0.0
    data = y.copy()
    data[~m] = 0.0
    rhs = (op_t(data) - normal(known))[m]

    def matvec(u):
        x = np.zeros_like(y)
        x[m] = u.reshape(n, 3)
        return normal(x)[m].ravel()

    A = LinearOperator((3 * n, 3 * n), matvec=matvec, dtype=np.float64)
    # small products: one BLAS thread is ~6x faster than several fighting for busy cores
    with threadpool_limits(1):
        u, _ = cg(A, rhs.ravel(), x0=y[m].ravel(), rtol=1e-6, maxiter=iterations)
    out = y.copy()
    out[m] = u.reshape(n, 3)
    return out


def reconstruct(method, image: np.ndarray, face, prior_step: float = PRIOR_STEP) -> np.ndarray | None:
    """The anonymised ``image`` with ``face``'s region replaced by its reconstruction (uint8), the
    image itself for ``original``, or None when the method's operator is unknown."""
    if type(method).anonymize is Original.anonymize:
        return np.array(image, copy=True)
    d = degradation(method, image.shape, face)
    if d is None:
        return None
    x0, y0, x1, y1 = d.box
    out = np.array(image, copy=True)
    est = invert(image[y0:y1, x0:x1], d, prior_step)
    out[y0:y1, x0:x1] = np.clip(np.rint(est), 0, 255).astype(np.uint8)
    return out
