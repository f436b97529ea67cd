"""Where an attacker's images come from: the second release that ``lazy`` and ``semi`` attackers
use as their gallery, and the identity-disjoint training images of ``semi`` attackers.

* Gallery: a deterministic method's second release equals its first, so the probes' own outputs
  serve; with several ``--seeds`` another seed's outputs serve (the next seed, cyclically); a run
  with one seed anonymises the gallery itself (role ``gallery``: stored apart, seeded apart).
* Training: LFW devtest is attacked with the method's outputs on LFW devtrain people with 2+
  images (whole people, seeded order, as many images as the evaluation has unless told), the
  embedded sample with the LFW devtrain images it ships (``scripts/make_sample_train.py``), CelebA's
  ``eval`` split with its ``probe-train`` people (identity-disjoint by the split rule; that the
  attribute probes were fitted on them does not matter to an attacker); a data set without a training split is attacked by identity-disjoint folds of its own
  evaluation images (the ``gallery`` outputs), and the run records which.
"""
from __future__ import annotations

import numpy as np

from bench import methods as method_registry
from kpdp.datasets import LFW, CelebA, LFWSample

FOLDS_SOURCE = "identity folds of the evaluation set (no training split)"


def is_deterministic(method: str) -> bool:
    return bool(getattr(method_registry.method_class(method), "deterministic", False))


def gallery_release(method: str, seed: int, seeds: list[int]) -> tuple[str, int]:
    """(role, seed) of the cell whose outputs are the anonymised gallery for probes of ``seed``.

    Example:
        >>> gallery_release("kpdp", 0, [0, 1]), gallery_release("kpdp", 1, [0, 1])
        (('probe', 1), ('probe', 0))
        >>> gallery_release("kpdp", 0, [0]), gallery_release("blur", 0, [0])
        (('gallery', 0), ('probe', 0))
    """
    if is_deterministic(method):
        return "probe", seed
    order = sorted(set(seeds))
    if len(order) > 1:
        return "probe", order[(order.index(seed) + 1) % len(order)]
    return "gallery", seed


def training_split(ds):
    """(identity-disjoint training data set, description) for attackers of ``ds``, or (None, why)."""

    sample = isinstance(ds, LFWSample)  # its "all" is its devtest images (the sample's own devtrain apart)
    if (isinstance(ds, LFW) and ds.split in (("devtest", "all") if sample else ("devtest",))
            and (ds.root / "peopleDevTrain.txt").is_file()):
        return type(ds)(ds.root, "devtrain"), ("the embedded sample's LFW devtrain people with 2+ images" if sample
                                               else "LFW devtrain people with 2+ images (peopleDevTrain.txt)")
    if isinstance(ds, CelebA) and ds.split == "eval":
        return CelebA(ds.root, "probe-train"), f"CelebA probe-train people with 2+ images ({CelebA.SPLIT_RULE})"
    return None, FOLDS_SOURCE


def training_samples(ds, n_images: int, seed: int = 0) -> tuple[list, str]:
    """Up to ``n_images`` training images of whole people with 2+ images, people in a seeded
    order; ([], why) when ``ds`` has no training split."""
    train, source = training_split(ds)
    if train is None:
        return [], source
    out = whole_people(train.samples, lambda s: s.identity, n_images, seed)
    return out, f"{source}: {len(out)} images of {len({s.identity for s in out})} people"


def whole_people(items, identity, n: int, seed: int) -> list:
    """Up to about ``n`` of ``items``, whole people with 2+ items each, people in a seeded order
    (``identity(item)``: its person); the last person may be cut to make ``n``, never below 2."""
    by_person: dict = {}
    for item in items:
        by_person.setdefault(identity(item), []).append(item)
    people = sorted(p for p, v in by_person.items() if len(v) >= 2)
    out = []
    for i in np.random.default_rng(seed).permutation(len(people)):
        if len(out) >= n:
            break
        out += by_person[people[i]][: max(2, n - len(out))]
    return out


def released_features(store, store_dataset: str, method: str, eps, seed: int, keys: list[str]):
    """{image_id: (identity, {key: feature})} of the ok outputs of one stored cell."""
    out = {}
    for image_id, status, _, record, feats in store.images(store_dataset, method, eps, seed):
        if status == "ok":
            out[image_id] = (record.get("identity"), {k: np.asarray(feats[k], np.float64) for k in keys if k in feats})
    return out


def aligned(released: dict, image_ids: list[str], key: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, dim) features of ``image_ids`` in that order, zero rows where the method produced no
    output (a zero embedding is similar to nothing), and the mask of rows present."""
    emb = np.zeros((len(image_ids), dim))
    present = np.zeros(len(image_ids), bool)
    for i, image_id in enumerate(image_ids):
        hit = released.get(image_id)
        if hit is not None and key in hit[1]:
            emb[i], present[i] = hit[1][key], True
    return emb, present
