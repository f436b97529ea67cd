import numpy as np
import pytest

from kpdp.space import DEFAULT_PATH, IdentitySpace, fit, generalised_procrustes, normalise


def test_shipped_space_loads_with_hash_and_metadata():
    s = IdentitySpace.load()
    assert s.W.shape == (136, 16) and s.lo.shape == (16,) and np.all(s.hi > s.lo)
    assert s.meta["format_version"] == "2" and "devtrain" in s.meta["fit_data"]
    assert np.all(np.diff(s.fisher_ratio) <= 1e-12)  # sorted, most discriminative first
    assert s.fisher_ratio[0] > 1.5


def test_tampered_file_is_refused(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(str(DEFAULT_PATH), framework="numpy") as f:
        meta = f.metadata()
    arrays = load_file(str(DEFAULT_PATH))
    arrays["lo"] = arrays["lo"] - 1.0
    save_file(arrays, str(tmp_path / "s.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="hash"):
        IdentitySpace.load(tmp_path / "s.safetensors")


def test_procrustes_removes_pose():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(68, 2))
    shapes = []
    for k in range(20):
        a, s, t = rng.uniform(-0.5, 0.5), rng.uniform(20, 80), rng.uniform(0, 200, 2)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        shapes.append(s * (base + rng.normal(scale=0.01, size=base.shape)) @ rot.T + t)
    mean = generalised_procrustes(np.array(shapes))
    vecs = np.array([normalise(x, mean)[0] for x in shapes])
    assert vecs.std(0).max() < 0.01 * np.abs(mean).max()


def test_fit_finds_the_identity_direction():
    """Synthetic people whose identity lives in one shape direction: component 1 must find it."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=(68, 2)) * 10
    direction = rng.normal(size=(68, 2))
    lms, ids, offsets = [], [], []
    for person in range(60):
        offset = rng.normal() * 2.0
        offsets.append(offset)
        for _ in range(4):
            lms.append(base + offset * direction + rng.normal(scale=0.2, size=(68, 2)))
            ids.append(str(person))
    s = fit(np.array(lms), np.array(ids), n_pca=20)
    assert s.fisher_ratio[0] >= s.fisher_ratio[1] > 0
    c = s.coords(np.array(lms))[:, 0]
    person_means = np.array([c[i * 4:(i + 1) * 4].mean() for i in range(60)])
    assert abs(np.corrcoef(person_means, offsets)[0, 1]) > 0.99
