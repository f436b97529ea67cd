import numpy as np
import pytest

from kpdp.residual import ResidualBasis, fit
from kpdp.space import IdentitySpace


def _synthetic(rng, people=300, photos=4, d=10):
    """Dimension 0: varies within a person (expression); 1: person-specific; rest: small noise."""
    ids = np.repeat(np.arange(people), photos)
    x = rng.normal(0, 0.01, (len(ids), d))
    x[:, 0] += rng.normal(0, 1.0, len(ids))
    x[:, 1] += rng.normal(0, 1.0, people)[ids]
    return x, ids.astype(str)


def test_fit_keeps_within_person_directions_and_drops_identity(tmp_path):
    x, ids = _synthetic(np.random.default_rng(0))
    basis = fit(x, ids, k=1)
    assert abs(basis.basis[0, 0]) > 0.99 and abs(basis.basis[1, 0]) < 0.05
    assert basis.ratio[0] < 0.5  # person means of 4 photos keep a quarter of the within variance
    np.testing.assert_allclose(basis.project(basis.project(x)), basis.project(x), atol=1e-12)  # a projection
    digest = basis.save(tmp_path / "b.safetensors")
    back = ResidualBasis.load(tmp_path / "b.safetensors")
    assert back.digest() == digest and back.meta["k"] == "1"


def test_an_edited_basis_file_is_refused(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    x, ids = _synthetic(np.random.default_rng(1))
    fit(x, ids, k=2).save(tmp_path / "b.safetensors")
    with safe_open(str(tmp_path / "b.safetensors"), framework="numpy") as f:
        meta = dict(f.metadata())
    arrays = load_file(str(tmp_path / "b.safetensors"))
    arrays["basis"] = arrays["basis"] * 1.01
    save_file(arrays, str(tmp_path / "b.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="do not match the recorded hash"):
        ResidualBasis.load(tmp_path / "b.safetensors")


def test_the_shipped_basis_identifies_less_than_the_full_residual(sample_landmarks):
    """On the embedded sample (people the basis was not fitted on): rank-1 identification from
    what KPDP keeps of the residual is far below that from the full residual."""
    from bench.measure.landmark_privacy import chance_level
    from bench.metrics.reid_scores import reid_rank1

    space, basis = IdentitySpace.load(), ResidualBasis.load()
    assert basis.basis.shape == (136, int(basis.meta["k"]))
    np.testing.assert_allclose(basis.basis.T @ basis.basis, np.eye(basis.basis.shape[1]), atol=1e-9)
    lm, ids = sample_landmarks["landmarks"], sample_landmarks["identity"]
    r = np.stack([space.encode(x)[1] for x in lm])
    idx = np.arange(len(ids))

    def rank1(f):
        f = f / (f.std(0) + 1e-12)
        return reid_rank1(f, ids, idx, f, ids, similarity="neg_euclidean").value

    full, kept = rank1(r), rank1(r @ basis.basis)
    assert full > 5 * chance_level(ids)
    assert kept < 0.5 * full
