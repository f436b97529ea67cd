import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"  # committed test data
SHARED = Path(os.environ.get("KPDP_SHARED", ROOT.parent / "shared"))
LFW_ROOT = SHARED / "data" / "lfw"

needs_lfw = pytest.mark.skipif(not (LFW_ROOT / "pairs.txt").is_file(),
                               reason=f"LFW not found at {LFW_ROOT} (set KPDP_SHARED to the shared folder)")


@pytest.fixture(scope="session")
def sample():
    from kpdp.datasets import get_dataset

    return get_dataset("lfw-sample")


@pytest.fixture(scope="session")
def sample_landmarks(sample):
    with np.load(sample.root / "landmarks.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="session")
def sample_crops(tmp_path_factory, sample, sample_landmarks):
    """The first 16 sample faces packed as generator training crops (``python -m kpdp pack``'s file)."""
    from kpdp import train_data

    path = tmp_path_factory.mktemp("crops") / "crops.npz"
    arrays = {k: sample_landmarks[k][:16] for k in ("image_id", "identity", "landmarks")}
    train_data.pack(arrays, {s.image_id: s.path for s in sample}, path)
    return path


@pytest.fixture(scope="session")
def face_image(sample, sample_landmarks):
    """(image, Face with 68 landmarks) of the first sample image."""
    from kpdp.datasets import load_image
    from kpdp.faces.analyze import face_from_landmarks

    i = list(sample_landmarks["image_id"]).index(sample[0].image_id)
    return load_image(sample[0].path), face_from_landmarks(sample_landmarks["landmarks"][i])


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    os.environ.setdefault("KPDP_BENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
