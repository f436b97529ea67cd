import numpy as np
import pytest
from PIL import Image

from kpdp.datasets import DATASETS, DatasetError, ImageLoadError, get_dataset, load_image
from tests.conftest import LFW_ROOT, SHARED, needs_lfw
from tests.odd_images import make_odd_images


def _img(path, size=(40, 40), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, 100 if mode == "L" else (100, 50, 20)).save(path)


def test_lfw_layout_splits_and_pairs(tmp_path):
    root = tmp_path / "lfw"
    for name, n in [("Ann_A", 2), ("Bob_B", 1), ("Cy_C", 3)]:
        for k in range(1, n + 1):
            _img(root / "lfw-deepfunneled" / name / f"{name}_{k:04d}.jpg")
    (root / "peopleDevTrain.txt").write_text("1\nAnn_A\t2\n")
    (root / "peopleDevTest.txt").write_text("2\nBob_B\t1\nCy_C\t2\n")
    (root / "pairs.txt").write_text("1\t1\nAnn_A\t1\t2\nBob_B\t1\tCy_C\t3\n")
    assert len(get_dataset("lfw", root, "all")) == 6
    train = get_dataset("lfw", root, "devtrain")
    assert [s.image_id for s in train] == ["Ann_A/Ann_A_0001", "Ann_A/Ann_A_0002"]
    test = get_dataset("lfw", root, "devtest")
    assert len(test) == 3 and test.identities() == ["Bob_B", "Cy_C"]  # Cy_C capped at the 2 listed
    pairs = DATASETS["lfw"](root, "all").pairs()
    assert pairs[0][3] is True and pairs[1][3] is False and pairs[1][2].name == "Cy_C_0003.jpg"


def test_lfw_plain_layout(tmp_path):
    _img(tmp_path / "lfw" / "Ann_A" / "Ann_A_0001.jpg")
    assert get_dataset("lfw", tmp_path, "all")[0].identity == "Ann_A"


@pytest.mark.parametrize("header", ["", "202599\nimage_id identity\n"])
def test_celeba_with_and_without_header(tmp_path, header):
    for f in ("000001.jpg", "000002.jpg", "000003.jpg"):
        _img(tmp_path / "img_align_celeba" / f)
    (tmp_path / "identity_CelebA.txt").write_text(header + "000001.jpg 7\n000002.jpg 7\n000003.jpg 9\n")
    ds = get_dataset("celeba", tmp_path)
    assert [(s.image_id, s.identity) for s in ds] == [("000001", "7"), ("000002", "7"), ("000003", "9")]


def test_celeba_hq(tmp_path):
    _img(tmp_path / "CelebA-HQ-img" / "0.jpg"), _img(tmp_path / "CelebA-HQ-img" / "1.jpg")
    (tmp_path / "CelebA-HQ-to-CelebA-mapping.txt").write_text(
        "idx         orig_idx    orig_file\n0 119613 119614.jpg\n1 99094 099095.jpg\n")
    (tmp_path / "identity_CelebA.txt").write_text("119614.jpg 5\n099095.jpg 6\n")
    assert [(s.image_id, s.identity) for s in get_dataset("celeba-hq", tmp_path)] == [("0", "5"), ("1", "6")]


def test_vggface2_splits(tmp_path):
    _img(tmp_path / "train" / "n000001" / "0001_01.jpg"), _img(tmp_path / "test" / "n000009" / "0002_01.jpg")
    assert len(get_dataset("vggface2", tmp_path, "all")) == 2
    assert get_dataset("vggface2", tmp_path, "test")[0].identity == "n000009"


def test_orl_grayscale_served_as_rgb(tmp_path):
    for s in (1, 2, 10):
        for m in (1, 2):
            _img(tmp_path / "att_faces" / f"s{s}" / f"{m}.pgm", (92, 112), "L")
    ds = get_dataset("orl", tmp_path)
    assert [s.identity for s in ds][::2] == ["s1", "s2", "s10"]
    assert load_image(ds[0].path).shape == (112, 92, 3)


def test_folder_and_embedded_sample(tmp_path, sample):
    _img(tmp_path / "alice" / "a.png"), _img(tmp_path / "bob" / "b.jpg")
    assert get_dataset("folder", tmp_path).identities() == ["alice", "bob"]
    assert 200 <= len(sample) <= 300 and len(sample.identities()) == 100
    assert all(p.stat().st_size > 0 for p in (s.path for s in sample))


def test_bad_roots_and_splits(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        get_dataset("lfw", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        get_dataset("folder", tmp_path / "empty")
    with pytest.raises(DatasetError, match="valid: all, devtrain, devtest"):
        get_dataset("lfw", tmp_path / "empty", "train")
    with pytest.raises(DatasetError, match="unknown data set 'nope'"):
        get_dataset("nope")
    with pytest.raises(DatasetError, match="needs --root"):
        get_dataset("celeba")


def test_load_image_odd_files(tmp_path, face_image):
    cases = make_odd_images(tmp_path, face_image[0])
    expect_error = {"zero.jpg": "empty file", "text.jpg": "not a readable image", "corrupt.jpg": "corrupt",
                    "huge.png": "too large", "tiny.png": "too small"}
    for name in cases:
        if name in expect_error:
            with pytest.raises(ImageLoadError, match=expect_error[name]) as e:
                load_image(tmp_path / name)
            assert name in str(e.value)
        else:
            im = load_image(tmp_path / name)
            assert im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3, name
    g16 = load_image(tmp_path / "gray16.png")
    assert g16.max() > 100  # scaled to 8 bits, not clipped to 255 or truncated to 0


@needs_lfw
def test_real_lfw_counts():
    assert len(get_dataset("lfw", LFW_ROOT, "devtest")) == 3708
    assert len(get_dataset("lfw", LFW_ROOT, "devtest").identities()) == 1711
    train = get_dataset("lfw", LFW_ROOT, "devtrain")
    assert len(train) == 9525 and len(train.identities()) == 4038
    assert len(get_dataset("lfw", LFW_ROOT, "all")) == 13233
    assert len(DATASETS["lfw"](LFW_ROOT, "all").pairs()) == 6000


@pytest.mark.skipif(not (SHARED / "data" / "celeba-10k").is_dir(), reason="CelebA-10k not in ../shared")
def test_real_celeba_and_orl_counts():
    assert len(get_dataset("celeba", SHARED / "data" / "celeba-10k")) == 10000
    orl = get_dataset("orl", SHARED / "data" / "orl")
    assert len(orl) == 400 and len(orl.identities()) == 40
