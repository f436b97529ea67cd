"""The training-only landmark network: coordinates in crop pixels with a gradient to the image, a
mirror that moves the points with the face, training that learns on real crops, and the shipped
weights' accuracy against dlib on faces of people it never saw (the embedded sample's LFW devtest)."""
import numpy as np
import pytest
import torch

from kpdp import landmark_net as ln
from kpdp import train_data


@pytest.fixture(scope="module")
def sample_crops(sample, sample_landmarks, tmp_path_factory):
    """The embedded sample's first 96 faces packed as training crops are (kpdp.train_data: aligned
    128 px, JPEG), with their dlib landmarks and people."""
    keep = [list(sample_landmarks["image_id"]).index(s.image_id) for s in sample.samples[:96]]
    arrays = {k: sample_landmarks[k][keep] for k in ("image_id", "identity", "landmarks")}
    path = tmp_path_factory.mktemp("crops") / "crops.npz"
    train_data.pack(arrays, {s.image_id: s.path for s in sample}, path)
    return train_data.load(path)


def test_coordinates_are_crop_pixels_with_a_gradient_to_the_image():
    net = ln.LandmarkNet(width=8).eval()
    x = (torch.rand(2, 3, ln.SIZE, ln.SIZE) * 2 - 1).requires_grad_(True)
    y = net(x)
    assert y.shape == (2, 68, 2) and float(y.min()) >= 0 and float(y.max()) <= ln.SIZE
    y[:, 48:68].sum().backward()  # the mouth: what a consistency term in training would pull on
    assert float(x.grad.abs().sum()) > 0


class _Mirror:
    """An rng that always mirrors and draws the middle of every other range (no turn, scale 1, no shift)."""

    def random(self):
        return 0.0

    def uniform(self, lo, hi, size=None):
        mid = (lo + hi) / 2
        return mid if size is None else np.full(size, mid)


def test_mirror_moves_the_points_with_the_face(sample_crops):
    """augment's mirror: the image flipped, and the point labels swapped so that 36 stays the outer
    corner of the eye on the image's left (the mirrored 45), as in dlib's labelling of a mirrored face."""
    im, lm = sample_crops["images"][:1], sample_crops["landmarks"][:1]
    a_im, a_lm = ln.augment(im, lm, _Mirror())
    assert np.array_equal(a_im[0], im[0, :, ::-1])
    np.testing.assert_allclose(a_lm[0, 36], [ln.SIZE - lm[0, 45, 0], lm[0, 45, 1]], atol=1e-3)
    np.testing.assert_allclose(a_lm[0, 48], [ln.SIZE - lm[0, 54, 0], lm[0, 54, 1]], atol=1e-3)
    assert a_lm[0, 36, 0] < a_lm[0, 45, 0]


def test_identity_split_keeps_each_person_on_one_side():
    people = np.array([f"p{i % 37}" for i in range(500)])
    held = ln.identity_split(people)
    assert 0 < held.sum() < len(people)
    assert not set(people[held]) & set(people[~held])


def test_a_short_training_learns_real_crops(sample_crops, tmp_path):
    """A minute's worth of steps on 96 sample crops: held-out error falls well below the untrained
    network's (which sits near the crop centre), and the weights load back to the same outputs."""
    x = ln.to_input(sample_crops["images"])
    y = torch.from_numpy(sample_crops["landmarks"])
    before = ln.evaluate(ln.LandmarkNet(width=8), x, y)
    data = {**sample_crops, "identity": np.array([f"p{i}" for i in range(len(y))])}  # every face its own person
    record = ln.train(data, tmp_path / "lm.safetensors", minutes=0.4, batch=16, width=8, log=lambda *_: None)
    assert record["held_out_nme"] < 0.6 * before, (record["held_out_nme"], before)
    net = ln.load(tmp_path / "lm.safetensors")
    held = ln.identity_split(data["identity"])
    assert ln.evaluate(net, x[held], y[held]) == pytest.approx(record["held_out_nme"], rel=1e-5)


@pytest.mark.skipif(not ln.ASSET.is_file(), reason="no shipped landmark network (python -m kpdp train-landmarks)")
def test_shipped_network_agrees_with_dlib_on_people_it_never_saw(sample_crops):
    """LFW devtest people (the sample) are in neither of its training sets (CelebA-10k, LFW devtrain)."""
    x, y = ln.to_input(sample_crops["images"]), torch.from_numpy(sample_crops["landmarks"])
    error = ln.evaluate(ln.load(), x, y)
    assert error < 0.05, error  # measured 0.036 (mouth 0.035, jaw 0.048, eyes 0.029) on these 96 faces
