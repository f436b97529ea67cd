"""The OpenCV graph's FaceNet embeddings of the sample faces that ``tests/kpdp/faces/test_facenet_torch.py``
compares the torch port with, stored so that the parity test runs where OpenCV can no longer read
the graph (OpenCV >= 5.1 removed ``cv2.dnn.readNetFromTensorflow``).

Run once with an OpenCV that still has the importer, e.g.::

    pip install --target /tmp/cv50 --no-deps "opencv-python==5.0.*"
    PYTHONPATH=/tmp/cv50 python scripts/facenet_opencv_reference.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "facenet_casia_opencv_sample.npz"
EVERY, N_FACES = 12, 20  # every 12th of the 256 sample images: 20 people


def sample_faces():
    """(image ids, images, faces at their stored boxes) of the faces the parity test uses."""
    from kpdp.datasets import get_dataset, load_image
    from kpdp.faces.geometry import Face

    ds = get_dataset("lfw-sample")
    with np.load(ds.root / "landmarks.npz") as z:
        row = {k: i for i, k in enumerate(z["image_id"])}
        boxes = z["box"]
    picked = list(ds)[::EVERY][:N_FACES]
    return ([s.image_id for s in picked], [load_image(s.path) for s in picked],
            [Face(np.asarray(boxes[row[s.image_id]], np.float64)) for s in picked])


def main() -> int:
    import cv2

    from kpdp.faces import get_recognizer

    ids, images, faces = sample_faces()
    rec = get_recognizer("facenet-casia-opencv")
    emb = rec.embed_batch(images, faces).astype(np.float32)
    np.savez(OUT, image_id=np.array(ids), embedding=emb, opencv=cv2.__version__, version=rec.version)
    print(f"{OUT}: {emb.shape} embeddings by {rec.version} (OpenCV {cv2.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
