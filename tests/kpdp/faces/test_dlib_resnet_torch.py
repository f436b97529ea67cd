"""The torch port of dlib's face-recognition ResNet (kpdp.faces.dlib_resnet_torch) computes dlib's
descriptors: the same numbers on real face chips, the same similarity order, and a reader that
refuses a damaged file instead of building a wrong network."""
import collections
import shutil

import numpy as np
import pytest
import torch

from kpdp.faces import dlib_resnet_torch as drt

PEOPLE, PER_PERSON = 4, 3  # 12 faces of the bundled LFW sample: 12 same-person and 54 other pairs
# dlib and torch both compute in float32, in another summation order: on these chips they differ by
# <= 3e-7 (descriptors of norm ~1.4, float32 spacing there 1.2e-7); 1e-5 leaves room for other BLAS
# builds and thread counts, while each wrong convention tried (no mean subtraction, zero padding of
# the shortcut sum at the start instead of the end, 'same' padding of the stride-2 convs) moves
# descriptors by more than 1e-2 (0.035, 0.55, 0.30; the channel means in BGR order: 0.024).
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def sample_faces(sample, sample_landmarks):
    """(samples, images, Faces with the stored box and 68 landmarks) of the first PEOPLE sample people
    with PER_PERSON images each."""
    from kpdp.datasets import load_image
    from kpdp.faces.geometry import Face

    row = {k: i for i, k in enumerate(sample_landmarks["image_id"])}
    count = collections.Counter(s.identity for s in sample)
    people = [p for p in dict.fromkeys(s.identity for s in sample) if count[p] >= PER_PERSON][:PEOPLE]
    picked = [s for p in people for s in [s for s in sample if s.identity == p][:PER_PERSON]]
    faces = [Face(sample_landmarks["box"][row[s.image_id]], sample_landmarks["landmarks"][row[s.image_id]])
             for s in picked]
    return picked, [load_image(s.path) for s in picked], faces


@pytest.fixture(scope="module")
def chips(sample_faces):
    """(identities, 150 px chips, dlib's model) of ``sample_faces``, aligned as the project's ``dlib``
    recognizer aligns them (from the stored 68 landmarks)."""
    from kpdp.faces.recognizers import DlibResNetCpp

    picked, images, faces = sample_faces
    rec = DlibResNetCpp()  # dlib's own forward: the reference
    return [s.identity for s in picked], [rec.chip(im, f) for im, f in zip(images, faces)], rec.model


@pytest.fixture(scope="module")
def descriptors(chips):
    _, images, dlib_model = chips
    reference = np.array([np.array(d) for d in dlib_model.compute_face_descriptor(images)], np.float64)
    net = drt.load_dlib_resnet_torch()
    with torch.inference_mode():
        ours = net(net.chips_to_tensor(images)).double().numpy()
        alone = net(net.chips_to_tensor(images[3:4])).double().numpy()
    return ours, reference, alone


def _cosines(x):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x @ x.T


def test_descriptors_equal_dlibs(descriptors):
    ours, reference, alone = descriptors
    assert ours.shape == reference.shape == (PEOPLE * PER_PERSON, 128)
    assert np.abs(ours - reference).max() < TOLERANCE
    # unnormalised, as dlib returns them (an L2 step would pass the cosine test but not this one)
    assert not np.allclose(np.linalg.norm(reference, axis=1), 1, atol=1e-2)
    assert np.abs(alone[0] - ours[3]).max() < TOLERANCE  # batching changes nothing


def test_same_person_similarities_keep_their_order(chips, descriptors):
    identities = np.array(chips[0])
    ours, reference, _ = descriptors
    c_ours, c_ref = _cosines(ours), _cosines(reference)
    upper = np.triu_indices(len(identities), 1)
    same = (identities[:, None] == identities[None, :])[upper]
    a, b = c_ours[upper], c_ref[upper]
    assert np.abs(a - b).max() < TOLERANCE
    # dlib's descriptors are not centred (cosines of strangers ~0.8), but on these faces every
    # same-person pair is closer than every pair of strangers, for dlib and for the port
    assert b[same].min() > b[~same].max() and a[same].min() > a[~same].max()
    # every comparison of two pairs dlib separates by more than the tolerance comes out the same way
    gap_ref, gap_ours = b[:, None] - b[None, :], a[:, None] - a[None, :]
    clear = np.abs(gap_ref) > 2 * TOLERANCE
    assert (np.sign(gap_ours[clear]) == np.sign(gap_ref[clear])).all()
    # and each face's nearest other face is the same one in both
    np.fill_diagonal(c_ours, -2), np.fill_diagonal(c_ref, -2)
    assert (c_ours.argmax(1) == c_ref.argmax(1)).all()


def test_the_reader_finds_the_networks_layers():
    net = drt.read_dlib_net(drt.default_path())
    kinds = collections.Counter(kind for kind, _ in net["layers"])
    assert net["size"] == (150, 150) and np.allclose(net["mean"], (122.782, 117.001, 104.298))
    assert kinds["con_4"] == 29 and kinds["affine_"] == 29 and kinds["add_prev_"] == 14 and kinds["fc_2"] == 1


def test_a_truncated_file_is_refused(tmp_path):
    data = drt.default_path().read_bytes()
    for n in (5, 400, len(data) // 2, len(data) - 1):
        path = tmp_path / f"truncated{n}.dat"
        path.write_bytes(data[:n])
        with pytest.raises(drt.DlibFormatError, match="truncated or corrupt at byte"):
            drt.load_dlib_resnet_torch(path)


def test_a_corrupt_file_is_refused(tmp_path):
    path = tmp_path / "corrupt.dat"
    shutil.copy(drt.default_path(), path)
    data = bytearray(path.read_bytes())
    start = data.index(b"con_4") + 5  # the first conv's params tensor: version 2 becomes 3
    assert data[start:start + 2] == b"\x01\x02"
    data[start + 1] = 3
    path.write_bytes(bytes(data))
    with pytest.raises(drt.DlibFormatError, match="con_ params version is 3, expected 2"):
        drt.load_dlib_resnet_torch(path)
    path.write_bytes(drt.default_path().read_bytes() + b"\x00")
    with pytest.raises(drt.DlibFormatError, match="1 bytes left after the last layer"):
        drt.load_dlib_resnet_torch(path)
    path.write_bytes(drt.default_path().read_bytes().replace(b"loss_metric_2", b"loss_mmod_xx2", 1))
    with pytest.raises(drt.DlibFormatError, match="expected 'loss_metric_2'"):
        drt.load_dlib_resnet_torch(path)


def test_wrong_input_size_is_refused():
    net = drt.load_dlib_resnet_torch()
    with pytest.raises(ValueError, match=r"\(B, 3, 150, 150\)"):
        net(torch.zeros(1, 3, 160, 160))


def test_the_dlib_backend_runs_the_port_and_embeds_as_dlib_does(sample_faces, tmp_path, monkeypatch):
    """``get_recognizer("dlib")`` (the port, through ONNX Runtime on a CPU) against ``dlib-cpp``
    (dlib's own forward): the same unit embeddings to 1e-5, its own version string (caches of the
    C++ forward's embeddings are not reused as the port's)."""
    from kpdp.faces import get_recognizer

    monkeypatch.setenv("KPDP_ONNX_CACHE", str(tmp_path))
    _, images, faces = sample_faces
    images, faces = images[:6], faces[:6]
    port, cpp = get_recognizer("dlib"), get_recognizer("dlib-cpp")
    a, b = port.embed_batch(images, faces), cpp.embed_batch(images, faces)
    assert a.shape == b.shape == (6, 128) and np.abs(a - b).max() < TOLERANCE
    assert np.allclose(np.linalg.norm(a, axis=1), 1)
    assert port.version != cpp.version and port.version.endswith("-torch-ort")
