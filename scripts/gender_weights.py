"""Gender-balanced sampling weights for the generator's training crops (KPDP v3).

LFW devtrain is about three quarters men; a generator trained on it draws men (the spec's
*regression to the mean*). The CelebA ``Male`` probe of ``bench/assets/attribute_probes`` (a linear
probe on the face square's features in the FID Inception's maps, fitted on CelebA probe-train,
balanced accuracy on held-out people in its json) labels a seeded subset of the packed crops; each predicted gender
then gets half of the sampling mass, and crops outside the subset get none. Writes
``image_id``, ``weight`` and ``male_logit`` for ``python -m kpdp train --balance``.

    python scripts/gender_weights.py --data train_128.npz --n 2400 --out balance.npz
"""
from __future__ import annotations

import argparse
import sys

import numpy as np


def balanced(is_male: np.ndarray) -> np.ndarray:
    """Weights that give each class half of the total mass.

    >>> balanced(np.array([True, True, True, False])).round(3).tolist()
    [0.167, 0.167, 0.167, 0.5]
    """
    w = np.where(is_male, 0.5 / max(is_male.sum(), 1), 0.5 / max((~is_male).sum(), 1))
    return w / w.sum()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True), p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=2400, help="crops labelled (Inception: ~0.1 s each on a core)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    from tqdm import tqdm

    from bench.metrics.attribute_probes import image_features, load_probes
    from kpdp import train_data

    d = train_data.load(a.data)
    pick = np.sort(np.random.default_rng(a.seed).permutation(len(d["images"]))[:a.n])
    probes = load_probes()
    # the packed crops are whole images to the probes, their landmarks in crop pixels
    feats = np.concatenate([image_features(list(d["images"][pick[i:i + 64]]), list(d["landmarks"][pick[i:i + 64]]))
                            for i in tqdm(range(0, len(pick), 64), desc="inception")])
    logit = probes.logits(feats)[:, probes.index("Male")]
    weight = np.zeros(len(d["images"]))
    weight[pick] = balanced(logit > 0)
    np.savez(a.out, image_id=d["image_id"], weight=weight, male_logit=_with(len(weight), pick, logit), picked=pick)
    print(f"{a.out}: {len(pick)} crops labelled, {int((logit > 0).sum())} predicted men "
          f"({(logit > 0).mean():.0%}); each gender gets half of the sampling mass")
    return 0


def _with(n: int, index: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.full(n, np.nan)
    out[index] = values
    return out


if __name__ == "__main__":
    sys.exit(main())
