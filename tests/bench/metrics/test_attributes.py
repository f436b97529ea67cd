"""Attributes kept: the CelebA split rule, the committed attribute probes and the metric group."""
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from bench.metrics.attribute_probes import load_probes
from bench.metrics.attributes import FEATURE, AttributeGroup
from kpdp.datasets import CelebA, get_dataset
from tests.conftest import SHARED

CELEBA = SHARED / "data" / "celeba-10k"
needs_celeba = pytest.mark.skipif(not (CELEBA / "list_attr_celeba.txt").is_file(),
                                  reason=f"CelebA-10k not found at {CELEBA} (set KPDP_SHARED to the shared folder)")
PROBE_SPLITS = ("eval", "probe-train", "probe-val")


def _celeba_tree(root, identities):
    (root / "img_align_celeba").mkdir(parents=True)
    lines = []
    for k, ident in enumerate(identities, 1):
        Image.new("RGB", (40, 48), (100, 50, 20)).save(root / "img_align_celeba" / f"{k:06d}.jpg")
        lines.append(f"{k:06d}.jpg {ident}")
    (root / "identity_CelebA.txt").write_text("\n".join(lines) + "\n")


def test_split_rule_partitions_images_by_identity(tmp_path):
    identities = [3, 10, 11, 12, 12, 13, 14, 15, 16, 16, 21, 25]
    _celeba_tree(tmp_path, identities)
    parts = {s: get_dataset("celeba", tmp_path, s) for s in PROBE_SPLITS}
    assert sorted(x.image_id for p in parts.values() for x in p) == [x.image_id for x in get_dataset("celeba", tmp_path)]
    assert {x.identity for x in parts["eval"]} == {"10", "15", "25"}
    assert {x.identity for x in parts["probe-val"]} == {"11", "16", "21"}
    assert len(parts["probe-val"]) == 4  # both images of identity 16 go together


@needs_celeba
def test_real_celeba_splits_are_identity_disjoint():
    parts = {s: get_dataset("celeba", CELEBA, s) for s in PROBE_SPLITS}
    people = {s: {x.identity for x in p} for s, p in parts.items()}
    for a in PROBE_SPLITS:
        for b in PROBE_SPLITS:
            assert a == b or not people[a] & people[b]
    assert sum(len(p) for p in parts.values()) == len(get_dataset("celeba", CELEBA)) == 10000
    assert all(len(p) > 1500 for p in parts.values())


def test_probes_load_hash_checked_and_document_their_use(tmp_path):
    from bench.metrics.attribute_probes import DEFAULT_OUT, USE_THRESHOLD, load_probes

    p = load_probes()
    meta = p.provenance
    d = 768 + 2048  # Mixed_6e and Mixed_7c, read in the face square
    assert p.weight.shape == (40, d) and p.bias.shape == (40,) and p.mean.shape == p.std.shape == (d,)
    assert np.isfinite(p.weight).all() and (p.std > 0).all()
    acc = {a: meta["per_attribute"][a]["balanced_accuracy"] for a in p.attributes}
    assert p.used == [a for a in p.attributes if acc[a] >= USE_THRESHOLD]
    assert {"Male", "Eyeglasses"} <= set(p.used)
    assert meta["split_rule"] == CelebA.SPLIT_RULE and meta["extractor_sha256"]
    # an edited weights file is refused
    for suffix in (".json", ".safetensors"):
        shutil.copy(DEFAULT_OUT.with_suffix(suffix), tmp_path / f"probes{suffix}")
    raw = bytearray((tmp_path / "probes.safetensors").read_bytes())
    raw[-5] ^= 0xFF
    (tmp_path / "probes.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="sha256"):
        load_probes(str(tmp_path / "probes"))


@needs_celeba
def test_male_recovered_on_held_out_people():
    """The probes, applied exactly as the metric applies them (face finder, the whole image's
    Inception pass, the face square's features), recover Male on people of probe-val: a seeded
    sample of 120 faces."""
    import torch

    from bench.metrics.attribute_probes import (
        _finder,
        balanced_accuracy,
        image_features,
        load_probes,
        read_celeba_attributes,
    )
    from kpdp.datasets import load_image
    from kpdp.faces.analyze import NoFaceError

    torch.set_num_threads(1)
    probes = load_probes()
    names, attrs = read_celeba_attributes(CELEBA / "list_attr_celeba.txt")
    val = list(get_dataset("celeba", CELEBA, "probe-val"))
    pick = np.random.default_rng(0).choice(len(val), 120, replace=False)
    images, marks, truth = [], [], []
    for k in pick:
        image = load_image(val[k].path)
        try:
            face = _finder().primary(image)
        except NoFaceError:
            continue
        images.append(image)
        marks.append(face.landmarks)
        truth.append(attrs[val[k].path.name][names.index("Male")])
    assert len(images) >= 110
    pred = probes.predict(image_features(images, marks))[:, probes.index("Male")]
    committed = probes.provenance["per_attribute"]["Male"]["balanced_accuracy"]
    assert balanced_accuracy(np.array(truth), pred) >= min(0.9, committed - 0.06)


def _cell(orig_logits, anon_logits, identities):
    from bench.aggregate.cells import CellData

    n = len(orig_logits)
    return CellData("d", "m", None, 0, [f"i{k}" for k in range(n)], np.array(identities),
                    {"attr": np.asarray(orig_logits)}, [(f"i{k}", {}, {"attr": a}) for k, a in enumerate(anon_logits)],
                    np.arange(n), [], [], 0, 0)


def test_group_agreement_identical_and_flipped():
    from bench.metrics.attribute_probes import load_probes
    from bench.metrics.attributes import AttributeGroup

    probes = load_probes()
    rng = np.random.default_rng(0)
    orig = rng.normal(size=(30, 40))
    idents = [f"p{k // 3}" for k in range(30)]
    same = {r.backend: r for r in AttributeGroup().aggregate(_cell(orig, orig.copy(), idents))}
    assert list(same) == [*probes.used, "mean"]
    assert all(r.value == 1.0 and r.n == 30 and r.ci_low == r.ci_high == 1.0 for r in same.values())
    flipped = orig.copy()
    flipped[:10, probes.index("Male")] *= -1
    rows = {r.backend: r for r in AttributeGroup().aggregate(_cell(orig, flipped, idents))}
    assert rows["Male"].value == pytest.approx(20 / 30) and rows["Male"].ci_low < rows["Male"].value < rows["Male"].ci_high
    assert rows["mean"].value == pytest.approx(1 - 10 / 30 / len(probes.used))
    assert all(r.value == 1.0 for a, r in rows.items() if a not in ("Male", "mean"))


def test_group_reads_both_images_at_the_original_face(face_image):
    """The group reads the anonymised image at the original's landmarks (``ctx.primary``), never
    where a face is found in it: an unchanged copy gives the original's logits, the same face
    moved 60 px does not (a group that looked for the face would follow it)."""
    from bench.measure.analysis import ImageContext
    from bench.metrics.attributes import AttributeGroup

    image, face = face_image
    group = AttributeGroup()
    backends = type("Backends", (), {"device": "cpu"})

    def Ctx(im):  # noqa: N802 - the context the harness hands a group
        return ImageContext(im, backends, [face], 0)

    logits = group.original(Ctx(image))[1]["attr"]
    assert logits.shape == (40,)
    np.testing.assert_allclose(group.anonymised(Ctx(image.copy()))[1]["attr"], logits, atol=1e-9)
    moved = np.roll(image, 60, axis=1)
    assert np.abs(group.anonymised(Ctx(moved))[1]["attr"] - logits).max() > 0.5


def test_committed_json_is_what_training_writes():
    from bench.metrics.attribute_probes import DEFAULT_OUT

    meta = json.loads(DEFAULT_OUT.with_suffix(".json").read_text())
    # the committed probes were made before the command moved to bench.cli (same code)
    assert meta["command"].startswith(("python -m bench.cli.attribute_probes", "python -m bench.metrics.attribute_probes"))
    assert set(meta["images_with_face"]) == {"probe-train", "probe-val"}
    assert meta["images_with_face"]["probe-train"] > meta["images_with_face"]["probe-val"] > 1000


def test_fid_and_attributes_share_one_inception_forward(face_image, monkeypatch):
    """Both groups on one image context run the network once (issue #36: the attribute probes
    used to make a second forward of the same network), and the pass's pool is FID's feature."""
    import bench.measure.analysis as analysis
    from bench.measure.analysis import ImageContext
    from bench.metrics.attributes import AttributeGroup
    from bench.metrics.fid import InceptionGroup, inception_features

    calls = []
    real = analysis.inception_pass
    monkeypatch.setattr(analysis, "inception_pass", lambda *a, **k: calls.append(1) or real(*a, **k))
    image, face = face_image
    ctx = ImageContext(image, type("Backends", (), {"device": "cpu"}), [face], 0)
    fid = InceptionGroup().anonymised(ctx)[1]["incep"]
    AttributeGroup().anonymised(ctx)
    assert len(calls) == 1
    np.testing.assert_array_equal(fid, inception_features([image])[0])


def test_per_image_agreement_covers_the_probes_measured_and_pairs_them():
    probes = load_probes()
    rng = np.random.default_rng(0)
    orig = rng.normal(size=(4, len(probes.attributes)))
    anon = orig.copy()
    anon[0] *= -1  # the first face: every label flipped
    records = [(f"i{k}", {}, {FEATURE: anon[k]}) for k in range(3)] + [("i3", {}, {})]  # the last not measured
    cell = SimpleNamespace(gallery_feats={FEATURE: orig}, probes=records, probe_index=np.arange(4),
                           probe_identities=np.array(["p", "q", "r", "s"]))
    per = AttributeGroup().per_image(cell)
    positions, mean = per[("attribute_agreement", "mean")]
    assert positions == [0, 1, 2] and mean.tolist() == [0.0, 1.0, 1.0]
    paired = AttributeGroup().paired(cell, cell, 100, 0)[("attribute_agreement", "mean")]
    assert paired.n == 3 and paired.a == paired.b == pytest.approx(2 / 3)
