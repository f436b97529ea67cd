"""Benchmarks (run only when named). :func:`sample_faces` is the input every one of them times."""
from __future__ import annotations


def sample_faces(n: int) -> list[tuple]:
    """The first ``n`` images of the embedded LFW sample as (image, face, 68 landmarks), the face
    built from the shipped landmarks, so that no detector runs inside what a benchmark times."""
    import numpy as np

    from kpdp.datasets import get_dataset, load_image
    from kpdp.faces.analyze import face_from_landmarks

    ds = get_dataset("lfw-sample")
    with np.load(ds.root / "landmarks.npz") as z:
        lm = dict(zip(z["image_id"], z["landmarks"]))
    return [(load_image(s.path), face_from_landmarks(lm[s.image_id]), lm[s.image_id]) for s in list(ds)[:n]]
