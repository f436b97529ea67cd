"""A small 68-point landmark network on the generator's aligned 128 px crops, with a gradient.

Why: KPDP's generator draws a face from a drawing of the privatised 68 points, but nothing in its
training asks the drawn face to *follow* that drawing (issue #35: with the original geometry, v3
keeps expression agreement 0.325 where the DeepPrivacy-style generator keeps 0.555). A
geometry-consistency term needs landmarks of the drawn face that gradients pass through: dlib's
shape predictor (regression trees) has none, and face-alignment's FAN downloads its weights (no
network here). So this network is trained on the project's own dlib landmarks of its training
crops (:mod:`kpdp.train_data`), people split by identity, and is used only in training; the
benchmark keeps measuring landmarks with dlib, so its numbers are not trained on.

Heatmaps at 32 x 32 and a soft-argmax give coordinates in crop pixels, differentiable in the
input image.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .faces.registry import file_sha256
from .generator import FLIP_68

SIZE, GRID = 128, 32
ASSET = Path(__file__).parent / "assets" / "landmark_net.safetensors"


def _block(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class LandmarkNet(nn.Module):
    """(B, 3, 128, 128) crops in [-1, 1] -> (B, 68, 2) landmarks in crop pixels."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.down = nn.Sequential(_block(3, w), _block(w, w, 2), _block(w, 2 * w), _block(2 * w, 2 * w, 2))  # 32
        self.deep = nn.Sequential(_block(2 * w, 4 * w, 2), _block(4 * w, 4 * w), _block(4 * w, 4 * w),
                                  _block(4 * w, 8 * w, 2), _block(8 * w, 8 * w))  # 8 x 8: the whole face
        self.up = nn.Sequential(_block(2 * w + 8 * w, 4 * w), _block(4 * w, 4 * w), nn.Conv2d(4 * w, 68, 1))
        centres = (torch.arange(GRID, dtype=torch.float32) + 0.5) * (SIZE / GRID)
        self.register_buffer("centres", centres, persistent=False)

    def heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        f = self.down(x)
        g = F.interpolate(self.deep(f), size=f.shape[-2:], mode="bilinear", align_corners=False)
        return self.up(torch.cat([f, g], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return soft_argmax(self.heatmaps(x), self.centres)


def soft_argmax(logits: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """(B, K, H, W) logits -> (B, K, 2) expected (x, y) under their softmax, ``centres`` the pixel
    coordinate of each cell (the same along both axes).

    Example:
        >>> logits = torch.full((1, 1, 4, 4), -1e4); logits[0, 0, 2, 1] = 0
        >>> soft_argmax(logits, torch.tensor([0.5, 1.5, 2.5, 3.5])).tolist()
        [[[1.5, 2.5]]]
    """
    b, k, h, w = logits.shape
    p = logits.flatten(2).softmax(-1).view(b, k, h, w)
    return torch.stack([(p.sum(2) * centres).sum(-1), (p.sum(3) * centres).sum(-1)], -1)


def interocular(lm: torch.Tensor) -> torch.Tensor:
    """Distance between the outer eye corners (points 36 and 45): the usual NME normaliser."""
    return (lm[..., 36, :] - lm[..., 45, :]).norm(dim=-1)


def nme(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean point error over the interocular distance, averaged over faces."""
    return float(((pred - target).norm(dim=-1).mean(-1) / interocular(target)).mean())


def augment(images: np.ndarray, lms: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random mirror, rotation (±10°), scale (±6 %) and shift (±5 px) of each crop and its points,
    so that the network sees faces as imperfectly aligned as a generator's drawing can be."""
    out_i, out_l = np.empty_like(images), np.empty_like(lms)
    for i, (im, lm) in enumerate(zip(images, lms)):
        if rng.random() < 0.5:
            im, lm = im[:, ::-1], lm[FLIP_68] * [-1, 1] + [SIZE, 0]
        m = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), rng.uniform(-10, 10), rng.uniform(0.94, 1.06))
        m[:, 2] += rng.uniform(-5, 5, 2)
        out_i[i] = cv2.warpAffine(np.ascontiguousarray(im), m, (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT101)
        out_l[i] = lm @ m[:, :2].T + m[:, 2]
    return out_i, out_l


def to_input(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def identity_split(identities: np.ndarray, held_out: int = 10) -> np.ndarray:
    """True for the people held out for validation (one in ``held_out``, by a hash of the name):
    no person is on both sides."""
    return np.array([int(hashlib.sha1(str(p).encode()).hexdigest(), 16) % held_out == 0 for p in identities])


def train(data: dict, out: Path, minutes: float, batch: int = 32, lr: float = 2e-3, seed: int = 0,
          width: int = 32, log=print, meta: dict | None = None) -> dict:
    """Train on ``data`` (:func:`kpdp.train_data.load`'s arrays) for ``minutes`` of wall time with a
    one-cycle rate over the steps that fit (estimated from the first 20), keep the weights with the
    best held-out NME; writes ``out`` (safetensors) and its ``.json`` (with ``meta``: the command,
    the data). Returns the record."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    held = identity_split(data["identity"])
    tr, va = np.flatnonzero(~held), np.flatnonzero(held)
    net = LandmarkNet(width)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    x_val = to_input(data["images"][va])
    y_val = torch.from_numpy(data["landmarks"][va]).float()
    t0, step, best, history = time.perf_counter(), 0, (float("inf"), None), []
    total = None
    while True:
        idx = rng.choice(tr, batch, replace=False)
        im, lm = augment(data["images"][idx], data["landmarks"][idx], rng)
        if total is None and step == 20:  # steps that fit the time, from the first 20
            total = max(100, int(minutes * 60 / ((time.perf_counter() - t0) / 20)))
        frac = step / total if total else 0.0
        for g in opt.param_groups:  # warm up, then cosine down to 2 %
            g["lr"] = lr * min(1.0, (step + 1) / 50) * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * min(frac, 1.0))))
        net.train()
        loss = F.smooth_l1_loss(net(to_input(im)), torch.from_numpy(lm).float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        done = total is not None and step >= total
        if step % 200 == 0 or done:
            val = evaluate(net, x_val, y_val)
            history.append({"step": step, "loss": loss.item(), "val_nme": val, "seconds": time.perf_counter() - t0})
            log(f"step {step}/{total}: loss {loss.item():.3f} held-out NME {val:.4f}")
            if val < best[0]:
                best = (val, {k: v.detach().clone() for k, v in net.state_dict().items()})
        if done:
            break
    record = {"held_out_nme": best[0], "steps": step, "batch": batch, "lr": lr, "seed": seed, "width": width,
              "train_faces": int(len(tr)), "held_out_faces": int(len(va)),
              "held_out_people": int(len(set(data["identity"][va]))), "minutes": minutes, "history": history,
              "labels": "dlib 68-point landmarks of the training crops (kpdp.train_data)", **(meta or {})}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(best[1], str(out))
    record["sha256"] = file_sha256(out)
    out.with_suffix(".json").write_text(json.dumps(record, indent=1))
    return record


@torch.no_grad()
def evaluate(net: LandmarkNet, x: torch.Tensor, y: torch.Tensor, batch: int = 128) -> float:
    net.eval()
    pred = torch.cat([net(x[i:i + batch]) for i in range(0, len(x), batch)])
    return nme(pred, y)


def load(path: Path | None = None) -> LandmarkNet:
    """The shipped (or given) weights, in eval mode, frozen."""
    from safetensors.torch import load_file

    path = Path(path or ASSET)
    if not path.is_file():
        raise FileNotFoundError(f"landmark network {path} not found (train it with `python -m kpdp train-landmarks`)")
    meta = json.loads(path.with_suffix(".json").read_text()) if path.with_suffix(".json").is_file() else {}
    net = LandmarkNet(meta.get("width", 32))
    net.load_state_dict(load_file(str(path)))
    return net.eval().requires_grad_(False)
