import shutil

import numpy as np
import pytest

from bench.aggregate.cells import verification_threshold
from kpdp.datasets import get_dataset


def _people(sample) -> dict:
    people = {}
    for s in sample:
        people.setdefault(s.identity, []).append(s)
    return people


def _lfw_tree(tmp_path, people, names):
    """An LFW folder holding the first two images of each of ``names``; returns its root."""
    root = tmp_path / "lfw"
    for n in names:
        for k, s in enumerate(people[n][:2], 1):
            dst = root / "lfw-deepfunneled" / n / f"{n}_{k:04d}.jpg"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(s.path, dst)
    return root


def test_threshold_source_lfw_pairs_or_impostor_pairs(tmp_path, sample):
    people = _people(sample)
    names = sorted(people)[:4]
    root = _lfw_tree(tmp_path, people, names)
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


def test_lfw_pair_embeddings_are_the_same_on_a_pool(tmp_path, sample):
    """The pairs.txt images embedded on two processes equal those embedded here."""
    from bench.measure.verify import lfw_pair_embeddings

    people = _people(sample)
    names = sorted(n for n in people if len(people[n]) >= 2)[:3]
    root = _lfw_tree(tmp_path, people, names)
    (root / "pairs.txt").write_text("1\t3\n" + "".join(f"{n}\t1\t2\n" for n in names) +
                                    f"{names[0]}\t1\t{names[1]}\t1\n{names[1]}\t2\t{names[2]}\t1\n"
                                    f"{names[0]}\t2\t{names[2]}\t2\n")
    (root / "peopleDevTest.txt").write_text(f"{len(names)}\n" + "".join(f"{n}\t2\n" for n in names))
    ds = get_dataset("lfw", root, "devtest")
    pairs_a, here = lfw_pair_embeddings(ds, ("dlib",), workers=1)
    pairs_b, pool = lfw_pair_embeddings(ds, ("dlib",), workers=2, chunk=1)
    assert pairs_a == pairs_b and len(pairs_a) == 3 and set(here) == set(pool) and len(here) == 6
    for p in here:
        assert np.allclose(here[p]["dlib"], pool[p]["dlib"])


def test_the_gallery_is_parsed_once_per_data_set_and_read_only(tmp_path):
    from bench.aggregate.cells import _shared_gallery
    from bench.store.results import ResultStore

    store = ResultStore(tmp_path / "run")
    for k, person in enumerate(["p", "p", "q"]):
        store.put_original("d", f"i{k}", person, f"/{k}.jpg", "sha", {"features": {"dlib": [float(k), 1.0]}})
    store.commit()
    shared: dict = {}
    ids, idents, feats = _shared_gallery(store, "d", None, shared)
    assert ids == ["i0", "i1", "i2"] and list(idents) == ["p", "p", "q"] and feats["dlib"].shape == (3, 2)
    store.put_original("d", "i3", "q", "/3.jpg", "sha", {"features": {"dlib": [3.0, 1.0]}})
    store.commit()
    assert _shared_gallery(store, "d", None, shared)[0] == ids  # memoised: the store was not read again
    assert len(_shared_gallery(store, "d", None, None)[0]) == 4  # without a memo it is
    with pytest.raises(ValueError):
        feats["dlib"][0, 0] = 9.0  # a cell cannot change what the next cell reads
