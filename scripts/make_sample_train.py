"""Copy the embedded sample's attacker-training images: LFW devtrain people with 2+ images, in a
seeded order, up to 3 images each, ``--images`` in all, into ``kpdp/datasets/lfw_sample`` with a
``peopleDevTrain.txt`` (View 1 format) that lists them. The attackers that adapt (``semi-*``)
train on these people, none of whom is in the sample's evaluation images (LFW View 1 splits are
identity-disjoint).

    python scripts/make_sample_train.py --lfw ../shared/data/lfw --images 256
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parents[1] / "kpdp" / "datasets" / "lfw_sample"
PER_PERSON = 3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lfw", required=True, type=Path), p.add_argument("--images", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    from kpdp.datasets import LFW

    train = LFW(a.lfw, "devtrain")
    by_person: dict[str, list] = {}
    for s in train.samples:
        by_person.setdefault(s.identity, []).append(s)
    people = sorted(k for k, v in by_person.items() if len(v) >= 2)
    chosen: dict[str, list] = {}
    n = 0
    for i in np.random.default_rng(a.seed).permutation(len(people)):
        if n >= a.images:
            break
        take = by_person[people[i]][:min(PER_PERSON, max(2, a.images - n))]
        chosen[people[i]] = take
        n += len(take)
    dst = SAMPLE / "lfw-deepfunneled"
    evaluation = {d.name for d in dst.iterdir() if d.is_dir()} - set(_listed(SAMPLE / "peopleDevTrain.txt"))
    assert not evaluation & set(chosen), "a training person is among the evaluation people"
    for name in _listed(SAMPLE / "peopleDevTrain.txt"):  # the previous selection
        shutil.rmtree(dst / name, ignore_errors=True)
    lines = [str(len(chosen))]
    for name in sorted(chosen):
        (dst / name).mkdir(parents=True, exist_ok=True)
        for s in chosen[name]:
            shutil.copy2(s.path, dst / name / s.path.name)
        lines.append(f"{name}\t{len(chosen[name])}")
    (SAMPLE / "peopleDevTrain.txt").write_text("\n".join(lines) + "\n")
    print(f"{n} images of {len(chosen)} LFW devtrain people -> {dst} (peopleDevTrain.txt)")
    return 0


def _listed(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [line.split("\t")[0] for line in path.read_text().splitlines()[1:] if line.strip()]


if __name__ == "__main__":
    sys.exit(main())
