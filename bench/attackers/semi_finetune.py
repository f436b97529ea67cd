"""``semi-finetune``: knows the method, has data to adapt, and retrains a recognizer on the
method's outputs (the semi-informed attacker of "A False Sense of Privacy", arXiv 2304.01635; its
code, kit-ps/seba, retrains a recognizer on anonymised data).

The recognizer is the torch FaceNet (Inception-ResNet-v1, CASIA-WebFace; :mod:`kpdp.faces.facenet_torch`).
Its last ``blocks`` Block8 modules (default 2: ``block8`` and ``repeat_3.4``), ``last_linear`` and
``last_bn`` (4.1M of the network's 23.5M parameters) are fine-tuned on the method's anonymised
training images (the identity-disjoint split ``semi-linear`` uses) with a CosFace margin loss over
the training identities; everything before is frozen. Why there: the method's artefacts shift
high-level features; a run's training split holds a few hundred images of a few dozen people (2 to
~10 each), enough for the last blocks and the bottleneck, not for the whole network; and the frozen
trunk's output (1792 x 3 x 3 per crop) is computed once per image, so a training step costs
~0.1-0.15 s on one CPU core (batch 64) and the budget goes to making the images. On held-out
*training* people (two identity folds of kpdp ε=1's 200 training images, LFW devtrain) rank-1 went
0.124 (pretrained) -> 0.131 (1 block, 300 steps), 0.147 (2 blocks), 0.156 (3 blocks, twice the
cost). CosFace (not a triplet loss) because with two images of most people a batch holds few
positive pairs, while a class weight per person learns from every image; the class weights start
at each person's mean embedding under the pretrained net, so training starts from a sensible loss.
Batch norm stays in eval mode (the graph's folded BN, see facenet_torch); augmentation: horizontal
flips. Then it attacks as ``lazy``: probes and a gallery of the method's
second releases, both embedded by the fine-tuned net, scored by the outcome code of every attacker
(:mod:`bench.attackers.outcomes`), with its own thresholds fitted on its own gallery.

The store keeps embeddings, not pixels, so this attacker runs on a finished run's store
(``python -m bench attack semi-finetune --run RUN_DIR``; ``bench run --attackers ...,semi-finetune``
calls it after the grid): it makes the images it needs again from the run's seeds and checks them
against the stored digests (:mod:`bench.run.finetune_data`; the orchestration is
:mod:`bench.run.finetune`), trains (or loads the cached
checkpoint), and appends its rows, the recomputed strongest attack and its sanity verdict to the
run's results. Checkpoints (safetensors, no pickle) are cached per (method spec, ε, training
images, attacker version, seed, hyper-parameters) under ``$KPDP_BENCH_CACHE/weights/semi-finetune``,
its embeddings per (checkpoint, image digest) in the feature cache, so a second call neither
retrains nor regenerates.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.attackers.registry import Attacker, register_attacker
from bench.metrics.reid_scores import REID_METRICS
from bench.store.cache import default_cache_dir
from bench.store.results import eps_key
from kpdp.faces.facenet_torch import WEIGHTS_SHA256, load_facenet_casia_torch, standardise

NAME = "semi-finetune"
RECOGNIZER = "facenet-casia-ft"  # the backend column of its rows: the torch FaceNet, fine-tuned
VERSION = "1"
METRICS = REID_METRICS
MIN_PEOPLE = 2  # training people with 2+ images below which there is nothing to learn (then: lazy)


@register_attacker
class SemiFinetune(Attacker):
    """Fine-tunes the torch FaceNet's last blocks on the method's outputs (runs on the images:
    `bench attack semi-finetune --run RUN_DIR`, or `bench run --attackers ...,semi-finetune`)."""

    name = NAME
    version = VERSION
    gallery = "anonymised"
    trains = True
    default = False  # minutes per (method, ε) on a CPU
    pixels = True  # needs the anonymised images: runs after the grid (see the module's docstring)

    def fit(self, train):
        raise RuntimeError("the semi-finetune attacker learns from the anonymised images, which the harness "
                           "does not keep: run `python -m bench attack semi-finetune --run RUN_DIR` on the "
                           "finished run (or name it in `bench run --attackers`, which does that after the grid)")


@dataclass
class FinetuneConfig:
    """The CPU budget and the hyper-parameters (all but ``device`` are part of the checkpoint's key)."""

    steps: int = 300  # optimiser steps (~0.1-0.15 s each on one core at batch 64, blocks 2)
    batch: int = 64
    blocks: int = 2  # Block8 modules fine-tuned: 1 = block8, 2 = and repeat_3.4, ... 6 = all of repeat_3
    lr: float = 1e-4  # Adam, the network's layers
    class_lr: float = 1e-2  # Adam, the CosFace class weights
    scale: float = 30.0  # CosFace s
    margin: float = 0.35  # CosFace m
    train_images: int | None = None  # None: every training image the run holds
    device: str = "cpu"

    def key(self) -> dict:
        d = asdict(self)
        d.pop("device")
        d.pop("train_images")  # the images themselves are in the key
        return d


# --- the network: a frozen trunk and a trainable head -------------------------------------------

_STEM = ("conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a", "conv2d_4b",
         "repeat_1", "mixed_6a", "repeat_2", "mixed_7a")


def _check_blocks(blocks: int) -> int:
    if not 1 <= int(blocks) <= 6:
        raise ValueError(f"--blocks must be 1..6 (block8 and up to the 5 blocks of repeat_3), not {blocks}")
    return int(blocks)


class Trunk:
    """The frozen part of the torch FaceNet: standardised 160 px crops -> (N, 1792, 3, 3)."""

    def __init__(self, net, blocks: int, device: str = "cpu"):
        import torch

        self.net, self.device = net, device
        self.cut = 5 - (_check_blocks(blocks) - 1)  # repeat_3 blocks that stay frozen
        self.torch = torch

    def __call__(self, crops: np.ndarray, batch: int = 32, flip: bool = False):
        """uint8 N x 160 x 160 x 3 crops -> float32 features on the device (no gradient)."""

        torch = self.torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(crops), batch):
                c = crops[i:i + batch]
                if flip:
                    c = c[:, :, ::-1]
                x = standardise(np.ascontiguousarray(c)).to(self.device).contiguous(memory_format=torch.channels_last)
                for name in _STEM:
                    x = getattr(self.net, name)(x)
                x = self.net.repeat_3[:self.cut](x)
                out.append(x.contiguous().float())
        if not out:
            return torch.zeros((0, 1792, 3, 3), device=self.device)
        return torch.cat(out).clone()  # out of inference mode: usable as training inputs


def make_head(net, blocks: int):
    """The trainable part (a copy): the last ``blocks`` Block8 modules, average pooling,
    ``last_linear``, ``last_bn``, L2 normalisation; kept in eval mode (frozen BN statistics)."""
    import copy

    import torch
    import torch.nn.functional as F

    cut = 5 - (_check_blocks(blocks) - 1)

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.Sequential(*[copy.deepcopy(b) for b in list(net.repeat_3)[cut:]],
                                              copy.deepcopy(net.block8))
            self.last_linear = copy.deepcopy(net.last_linear)
            self.last_bn = copy.deepcopy(net.last_bn)

        def forward(self, f):
            x = self.blocks(f).mean((2, 3))
            return F.normalize(self.last_bn(self.last_linear(x)), dim=1)

    head = Head().float().eval()
    for p in head.parameters():
        p.requires_grad_(True)
    return head


class CosFace:
    """Large-margin cosine loss (CosFace, Wang et al. 2018) over the training identities:
    ``CE(s * (cos(z, W_y) - m), s * cos(z, W_j))``; the class weights start at each person's mean
    embedding (``init``)."""

    def __init__(self, init, scale: float, margin: float):
        import torch

        self.weight = torch.nn.Parameter(torch.nn.functional.normalize(init.detach().clone(), dim=1))
        self.scale, self.margin = scale, margin

    def __call__(self, z, y):
        import torch
        import torch.nn.functional as F

        cos = z @ F.normalize(self.weight, dim=1).T
        logits = self.scale * (cos - self.margin * F.one_hot(y, cos.shape[1]).to(cos.dtype))
        return torch.nn.functional.cross_entropy(logits, y)


def class_means(head, feats, y, n_classes: int):
    import torch

    with torch.no_grad():
        z = head(feats)
    return torch.stack([z[y == k].mean(0) for k in range(n_classes)])


def train_head(head, feats, labels, cfg: FinetuneConfig, seed: int, log=None) -> dict:
    """Fine-tune ``head`` in place on trunk features ``feats`` (N, 1792, 3, 3) of people ``labels``
    with the CosFace loss; batches drawn by a generator seeded with ``seed``. Returns the losses
    (full-set loss before and after, and per step) and the cost."""
    import torch

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    classes, y = np.unique(np.asarray(labels), return_inverse=True)
    y = torch.as_tensor(y, device=feats.device)
    loss_fn = CosFace(class_means(head, feats, y, len(classes)), cfg.scale, cfg.margin)
    opt = torch.optim.Adam([{"params": list(head.parameters()), "lr": cfg.lr},
                            {"params": [loss_fn.weight], "lr": cfg.class_lr}])
    gen = torch.Generator().manual_seed(seed)
    head.eval()  # BN statistics frozen, no dropout: the parameters still learn

    def full_loss():
        with torch.no_grad():
            total = sum(float(loss_fn(head(feats[i:i + 256]), y[i:i + 256])) * len(y[i:i + 256])
                        for i in range(0, len(y), 256))
        return total / max(len(y), 1)

    before = full_loss()
    steps, order, pos = [], torch.randperm(len(y), generator=gen), 0
    for step in range(cfg.steps):
        if pos + cfg.batch > len(order) and pos > 0:
            order, pos = torch.randperm(len(y), generator=gen), 0
        idx = order[pos:pos + cfg.batch].to(feats.device)
        pos += cfg.batch
        loss = loss_fn(head(feats[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps.append(loss.item())
        if log and (step + 1) % max(1, cfg.steps // 5) == 0:
            log(f"  step {step + 1}/{cfg.steps}: loss {np.mean(steps[-20:]):.3f}")
    after = full_loss()
    return {"loss_before": before, "loss_after": after, "losses": steps, "steps": cfg.steps,
            "seconds": time.perf_counter() - t0}


# --- checkpoints --------------------------------------------------------------------------------

def checkpoint_dir() -> Path:
    return default_cache_dir() / "weights" / NAME


def checkpoint_key(method: str, eps, seed: int, train_digests: list[tuple[str, str]], cfg: FinetuneConfig,
                   fold: int | None = None) -> dict:
    """What a checkpoint depends on; its sha256 names the file."""

    images = hashlib.sha256("\n".join(f"{i} {d}" for i, d in sorted(train_digests)).encode()).hexdigest()
    return {"attacker": NAME, "version": VERSION, "method": method, "eps": eps_key(eps), "seed": int(seed),
            "fold": fold, "train_images": len(train_digests), "train_images_sha256": images,
            "base_weights": WEIGHTS_SHA256[:16], "hyper": cfg.key()}


def key_id(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def checkpoint_path(key: dict) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_.=" else "_" for ch in key["method"])
    return checkpoint_dir() / f"{safe}-{key['eps'] or 'none'}-{key_id(key)}.safetensors"


def save_checkpoint(path: Path, head, key: dict, cost: dict) -> Path:
    """The head's tensors as safetensors (atomically), its key and training cost as metadata."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp), metadata={"key": json.dumps(key, sort_keys=True), "cost": json.dumps(cost)})
    os.replace(tmp, path)
    return path


def load_checkpoint(path: Path, head, key: dict) -> dict | None:
    """Load into ``head`` and return the recorded training cost, or None when there is no file or
    it was made for another key (a damaged file is ignored: it is trained again)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    if not Path(path).is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
        if json.loads(meta.get("key", "null")) != json.loads(json.dumps(key, sort_keys=True)):
            return None
        head.load_state_dict(load_file(str(path), device=str(next(head.parameters()).device)), strict=True)
    except (SafetensorError, OSError, ValueError, RuntimeError):
        return None
    return json.loads(meta.get("cost", "{}"))


# --- one attacker: train (or load) and embed ----------------------------------------------------

class Model:
    """The torch FaceNet split at the fine-tuned blocks, on ``device``."""

    def __init__(self, cfg: FinetuneConfig, net=None):
        self.cfg = cfg
        self.net = net if net is not None else load_facenet_casia_torch(cfg.device)
        self.trunk = Trunk(self.net, cfg.blocks, cfg.device)

    def head(self):
        return make_head(self.net, self.cfg.blocks).to(self.cfg.device)

    def trained_head(self, key: dict, prepare, seed: int, log=None) -> tuple[object, dict]:
        """(head, cost): loaded from the cache when ``key`` was trained before, else trained and saved.
        ``prepare``: a callable giving (trunk features, labels, number of images) of the training
        images and their flips (called only to train)."""
        head = self.head()
        path = checkpoint_path(key)
        cost = load_checkpoint(path, head, key)
        if cost is not None:
            return head, {**cost, "cached": True, "checkpoint": str(path)}
        t0 = time.perf_counter()
        feats, labels, n_images = prepare()
        prep = time.perf_counter() - t0
        counts = np.unique(labels[:n_images], return_counts=True)[1]
        n_people = int((counts >= 2).sum())
        if n_people < MIN_PEOPLE:
            result = {"steps": 0, "seconds": 0.0, "loss_before": None, "loss_after": None, "losses": [],
                      "note": f"fewer than {MIN_PEOPLE} training people with 2+ images: the pretrained net"}
        else:
            result = train_head(head, feats, labels, self.cfg, seed, log)
        cost = {"train_seconds": round(result["seconds"], 2), "prepare_seconds": round(prep, 2),
                "steps": result["steps"], "images": int(n_images), "people": int(len(np.unique(labels))),
                "loss_before": result["loss_before"], "loss_after": result["loss_after"],
                "device": self.cfg.device, **({"note": result["note"]} if "note" in result else {})}
        save_checkpoint(path, head, key, cost)
        return head, {**cost, "cached": False, "checkpoint": str(path)}

    def embed(self, head, feats) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = [head(feats[i:i + 256]).cpu().numpy() for i in range(0, len(feats), 256)]
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 512))
