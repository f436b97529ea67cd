"""Face crops shared by the recognizers and their torch ports (a leaf module: it imports no
recognizer, so :mod:`kpdp.faces.recognizers` and :mod:`kpdp.faces.facenet_torch` both can)."""
from __future__ import annotations

import cv2
import numpy as np

from .geometry import Face


def facenet_crop(image: np.ndarray, face: Face, margin: int = 32, size: int = 160) -> np.ndarray:
    """FaceNet's evaluation crop: the box grown by margin/2 on each side, clipped, resized.

    >>> import numpy as np
    >>> facenet_crop(np.zeros((100, 100, 3), np.uint8), Face(np.array([20., 20., 80., 80.]))).shape
    (160, 160, 3)
    """
    h, w = image.shape[:2]
    x0, y0, x1, y1 = face.box
    m = margin / 2
    bb = np.array([max(x0 - m, 0), max(y0 - m, 0), min(x1 + m, w), min(y1 + m, h)]).astype(int)
    if bb[2] - bb[0] < 2 or bb[3] - bb[1] < 2:
        raise ValueError(f"face box {face.box} lies outside the image")
    return cv2.resize(image[bb[1]:bb[3], bb[0]:bb[2]], (size, size), interpolation=cv2.INTER_LINEAR)
