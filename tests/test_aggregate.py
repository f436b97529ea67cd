import shutil

import numpy as np

from bench.aggregate import verification_threshold
from kpdp.datasets import get_dataset


def test_threshold_source_lfw_pairs_or_impostor_pairs(tmp_path, sample):
    people = {}
    for s in sample:
        people.setdefault(s.identity, []).append(s)
    names = sorted(people)[:4]
    root = tmp_path / "lfw"
    for n in names:
        for k, s in enumerate(people[n][:2], 1):
            dst = root / "lfw-deepfunneled" / n / f"{n}_{k:04d}.jpg"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(s.path, dst)
    (root / "pairs.txt").write_text("1\t2\n" + f"{names[0]}\t1\t2\n{names[1]}\t1\t2\n"
                                    f"{names[0]}\t1\t{names[1]}\t1\n{names[2]}\t1\t{names[3]}\t2\n")
    (root / "peopleDevTest.txt").write_text(f"{len(names)}\n" + "".join(f"{n}\t2\n" for n in names))
    ds = get_dataset("lfw", root, "devtest")
    g = np.random.default_rng(0).normal(size=(8, 128))
    ids = np.repeat(np.arange(4), 2).astype(str)
    thr, source = verification_threshold(ds, "dlib", g, ids)
    assert source.startswith("lfw pairs.txt impostor pairs (2 pairs") and -1 <= thr <= 1
    thr2, source2 = verification_threshold(sample, "dlib", g, ids)
    assert source2 == "impostor pairs of the evaluated originals" and thr2 != thr
