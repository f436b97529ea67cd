"""The reconstruction attackers: recon-wiener inverts a known operator, recon-learned learns an
inverse on other people; both must beat the anonymised image they start from (a reconstruction
that silently returns its input would read as privacy), and both run on a finished run like
semi-finetune, checked and counted like every attacker."""
import numpy as np
import pytest

from bench import methods as method_registry
from bench.attackers import available, default_attackers, get_attacker
from bench.attackers import recon_learned as rl
from bench.attackers import recon_wiener as rw
from kpdp.datasets import load_image
from kpdp.faces import Face
from kpdp.method import face_region


@pytest.fixture(scope="module")
def all_faces(sample, sample_landmarks):
    """(image, Face, identity) of the embedded sample's 256 evaluation images, sorted by id (whole people)."""
    at = {i: k for k, i in enumerate(sample_landmarks["image_id"])}
    out = []
    for s in sample.samples:
        k = at[s.image_id]
        out.append((load_image(s.path), Face(np.asarray(sample_landmarks["box"][k], float),
                                             sample_landmarks["landmarks"][k]), s.identity))
    return out


@pytest.fixture(scope="module")
def faces(all_faces):
    return all_faces[:48]


def _rmse_in_mask(a, b, mask) -> float:
    return float(np.sqrt(((a.astype(float) - b.astype(float))[mask] ** 2).mean()))


def test_registered_after_the_ladder_not_default_and_refuse_embeddings():
    names = available()  # the built-ins in ladder order (other tests may register more after them)
    at = names.index("semi-finetune")
    assert names[at + 1:at + 3] == ["recon-wiener", "recon-learned"]
    assert not {"recon-wiener", "recon-learned"} & set(default_attackers())
    for name, trains in (("recon-wiener", False), ("recon-learned", True)):
        cls = get_attacker(name)
        assert cls.pixels and cls.gallery == "original" and cls.trains == trains
    with pytest.raises(RuntimeError, match="bench.cli.recon"):
        get_attacker("recon-wiener")().project(np.zeros((2, 3)))
    with pytest.raises(RuntimeError, match="bench.cli.recon"):
        get_attacker("recon-learned")().fit(None)


@pytest.mark.parametrize("spec, eps", [("blur", None), ("blur-strong", None), ("pixelate-8", None),
                                       ("pixelate[blocks=5]", None), ("dppix", float("inf")),
                                       ("blur[region=landmarks]", None)])
def test_the_operator_read_from_the_method_is_the_method(face_image, spec, eps):
    """A·x on the original reproduces the method's output to uint8 rounding (DP-Pix at ε = ∞: no noise)."""
    image, face = face_image
    method = method_registry.create(spec, eps)
    out = method.anonymize(image, [face], seed=0).image
    d = rw.degradation(method, image.shape, face)
    x0, y0, x1, y1 = d.box
    x = image[y0:y1, x0:x1].astype(float)
    ax = np.einsum("ij,jkc,lk->ilc", d.ay, x, d.ax)
    m = d.mask
    assert m.sum() > 1000 and np.array_equal(m, face_region(face, image.shape, method.region)[y0:y1, x0:x1] > 0)
    assert np.abs(ax[m] - out[y0:y1, x0:x1][m]).max() <= 1.5
    assert np.array_equal(out[y0:y1, x0:x1][~m], image[y0:y1, x0:x1][~m])  # the rest is the original's


def test_not_applicable_without_a_known_operator_and_identity_for_original(face_image):
    image, face = face_image
    for spec in ("mask", "mask-noise", "deepprivacy"):
        method = method_registry.create(spec)
        assert not rw.applies(method) and rw.reconstruct(method, image, face) is None
    original = method_registry.create("original")
    assert rw.applies(original) and np.array_equal(rw.reconstruct(original, image, face), image)

    class Sharpened(type(method_registry.create("blur"))):  # same parameters, other code: not trusted
        def anonymize_face(self, image, face, mask, seed):
            return image, None, {}

    assert not rw.applies(Sharpened())


def test_wiener_reconstruction_undoes_blur_and_raises_rank1(faces):
    """The guard: on real faces, the reconstruction is measurably closer to the original than the
    blurred image, and the off-the-shelf recognizer re-identifies more of it. Replacing the
    reconstruction by its input fails both."""
    from bench.metrics.reid_scores import rank1_hits
    from kpdp.faces import get_recognizer

    blur = method_registry.create("blur")
    rec = get_recognizer("dlib")
    before, after, rows = [], [], {"original": [], "blurred": [], "reconstructed": []}
    for image, face, _ in faces:
        blurred = blur.anonymize(image, [face], seed=0).image
        recon = rw.reconstruct(blur, blurred, face)
        mask = face_region(face, image.shape) > 0
        before.append(_rmse_in_mask(blurred, image, mask))
        after.append(_rmse_in_mask(recon, image, mask))
        for k, im in (("original", image), ("blurred", blurred), ("reconstructed", recon)):
            rows[k].append(rec.embed(im, face))
    assert np.mean(after) < 0.7 * np.mean(before)  # measured: 20 -> ~9 levels RMS inside the region
    ids = np.array([f[2] for f in faces])
    own = np.arange(len(faces))
    G = np.stack(rows["original"])
    r1 = {k: rank1_hits(np.stack(v), ids, own, G, ids).mean() for k, v in rows.items() if k != "original"}
    assert r1["reconstructed"] >= r1["blurred"] + 0.05, r1


def test_pixelation_reconstruction_keeps_the_cell_means_and_smooths(face_image):
    image, face = face_image
    method = method_registry.create("pixelate-8")
    out = method.anonymize(image, [face], seed=0).image
    recon = rw.reconstruct(method, out, face)
    d = rw.degradation(method, image.shape, face)
    x0, y0, x1, y1 = d.box
    again = np.einsum("ij,jkc,lk->ilc", d.ay, recon[y0:y1, x0:x1].astype(float), d.ax)
    assert np.abs(again[d.mask] - out[y0:y1, x0:x1][d.mask]).mean() < 1.0  # consistent with what was released
    mask = face_region(face, image.shape) > 0
    assert _rmse_in_mask(recon, image, mask) < 0.9 * _rmse_in_mask(out, image, mask)


def test_learned_inverse_is_exactly_the_identity_for_a_method_that_changes_nothing(faces):
    images = [f[0] for f in faces[:20]]
    lms = [f[1].landmarks for f in faces[:20]]
    model = rl.train(images, images, lms, [f[2] for f in faces[:20]])
    assert np.abs(model.local.weights).max() == 0
    assert np.abs(model.crop.weights).max() == 0 and np.abs(model.crop.mean_r).max() == 0
    assert model.is_identity() and np.array_equal(rl.reconstruct(model, images[0], lms[0]), images[0])


def test_learned_inverse_trained_on_other_people_undoes_blur(all_faces):
    """Trained on half the sample's people, it brings the other half's blurred faces closer to their
    originals (inside the face region) than the blurred images are; the input itself would not."""
    blur = method_registry.create("blur")
    ids = np.array([f[2] for f in all_faces])
    train = np.isin(ids, np.unique(ids)[::2])
    blurred = [blur.anonymize(im, [f], seed=0).image for im, f, _ in all_faces]
    idx = np.flatnonzero(train)
    model = rl.train([blurred[i] for i in idx], [all_faces[i][0] for i in idx],
                     [all_faces[i][1].landmarks for i in idx], ids[idx])
    assert model.info["crop"]["components"] > 0
    assert model.info["local"]["heldout_mse"] < model.info["local"]["mse_unchanged"]  # the filter learned something
    before, after = [], []
    for i in np.flatnonzero(~train)[:40]:
        image, face, _ = all_faces[i]
        mask = face_region(face, image.shape) > 0
        before.append(_rmse_in_mask(blurred[i], image, mask))
        after.append(_rmse_in_mask(rl.reconstruct(model, blurred[i], face.landmarks), image, mask))
    assert np.mean(after) < 0.9 * np.mean(before), (np.mean(before), np.mean(after))  # measured: ~22 -> ~18


def test_a_learned_model_round_trips_and_is_keyed(tmp_path, monkeypatch, faces):
    monkeypatch.setenv("KPDP_BENCH_CACHE", str(tmp_path))
    images = [f[0] for f in faces[:12]]
    lms = [f[1].landmarks for f in faces[:12]]
    blurred = [method_registry.create("blur").anonymize(im, [f[1]], seed=0).image for im, f in zip(images, faces)]
    model = rl.train(blurred, images, lms, [f[2] for f in faces[:12]])
    key = rl.model_key("blur", "", 0, [(f"img{i}", f"d{i}") for i in range(12)])
    path = rl.model_path(key)
    assert path.parent == tmp_path / "weights" / "recon-learned"
    rl.save_model(path, model, key)
    back = rl.load_model(path, key)
    assert back is not None and back.info["cached"]
    np.testing.assert_array_equal(back.reconstruct(blurred[0], lms[0]), model.reconstruct(blurred[0], lms[0]))
    other = rl.model_key("blur", "", 0, [("img0", "changed")])
    assert rl.model_path(other) != path and rl.load_model(path, other) is None
    assert rl.model_path(rl.model_key("blur", "", 0, [], fold=1)) != rl.model_path(rl.model_key("blur", "", 0, []))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """`bench run --attackers ignorant,recon-wiener,recon-learned` on 24 embedded sample images:
    blur (an operator recon-wiener knows) and mask (one it does not)."""
    from bench.cli.main import main

    out = tmp_path_factory.mktemp("recon") / "run"
    rc = main(["run", "--methods", "blur,mask", "--limit", "24", "--recognizers", "dlib", "--detectors", "mtcnn",
               "--metrics", "reid", "--attackers", "ignorant,recon-wiener,recon-learned", "--attacker-train-images",
               "24", "--executor", "local", "--out", str(out), "--quiet"])
    assert rc == 0
    return out


def test_on_a_tiny_run_it_appends_rows_checked_and_counted_like_every_attacker(tiny_run):
    import pandas as pd

    from bench.store.results import ResultStore

    df = pd.read_csv(tiny_run / "metrics.csv")
    r1 = df[(df.metric == "reid_rank1") & (df.backend == "max")]
    got = {(m, a) for m, a in zip(r1.method, r1.attacker)}
    assert {("blur", "recon-wiener"), ("blur", "recon-learned"), ("original", "recon-wiener"),
            ("original", "recon-learned"), ("mask", "recon-learned")} <= got
    assert ("mask", "recon-wiener") not in got  # not applicable: no rows rather than the ignorant's under its name
    for m in ("blur", "mask", "original"):
        rows = r1[r1.method == m].set_index("attacker")
        valid = rows[rows.valid == 1].drop(index="max", errors="ignore")
        assert rows.loc["max", "value"] == pytest.approx(valid.value.max())  # the strongest counts them
    store = ResultStore(tiny_run)
    meta = store.meta()
    store.close()
    verdicts = meta["attacker_sanity:lfw-sample"]["verdicts"]
    assert {"recon-wiener", "recon-learned"} <= set(verdicts)
    info = meta["recon:lfw-sample"]
    assert info["mask@/0"]["recon-wiener"]["applies"] is False
    assert info["blur@/0"]["recon-learned"]["training"]["images"] >= 20  # the run's devtrain images


def test_a_second_call_neither_anonymises_trains_nor_embeds_again(tiny_run):
    from bench.cli.recon import run
    from bench.store.results import ResultStore

    lines = []
    before = ResultStore(tiny_run)
    rows_before = before.aggregates()
    before.close()
    run(tiny_run, ["recon-wiener", "recon-learned"], log=lines.append)
    store = ResultStore(tiny_run)
    meta, rows_after = store.meta(), store.aggregates()
    store.close()
    assert meta["recon:lfw-sample"]["regeneration"]["images"] == 0
    assert not any("trained on" in x for x in lines)
    assert all(v["seconds"]["embed"] == 0 for k, v in meta["recon:lfw-sample"].items() if "@" in k)
    pd_cols = ["method", "metric", "backend", "attacker", "value"]
    assert rows_before[pd_cols].equals(rows_after[pd_cols])
