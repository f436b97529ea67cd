"""Detection rate: does a detector still find the face where the original's face was?

A hit is any detected box with IoU >= 0.5 against the original's face box (boxes are
``(x0, y0, x1, y1)``, ``x1``/``y1`` exclusive). The rate on the originals themselves is reported as the
reference row (method ``original``).
"""
from __future__ import annotations

import numpy as np

from .base import Metric, MetricResult

IOU_THRESHOLD = 0.5


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes.

    Example:
        >>> iou(np.array([0, 0, 10, 10]), np.array([0, 0, 10, 20]))
        0.5
    """
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def detected(boxes: list[np.ndarray], reference_box: np.ndarray, threshold: float = IOU_THRESHOLD) -> bool:
    return any(iou(b, reference_box) >= threshold for b in boxes)


def detection_rate(detections: list[list[np.ndarray]], reference_boxes: list[np.ndarray]) -> MetricResult:
    """Functional twin: fraction of images with a detection matching the reference box.

    Example:
        >>> detection_rate([[np.array([0, 0, 10, 10])], []], [np.array([0, 0, 10, 10])] * 2).value
        0.5
    """
    hits = [detected(d, r) for d, r in zip(detections, reference_boxes)]
    return MetricResult(float(np.mean(hits)) if hits else float("nan"), len(hits))


class DetectionRate(Metric):
    """Runs a detector (a :mod:`kpdp.faces` backend) on anonymised images.

    Example:
        >>> class Fixed:  # any object with detect_batch(images) -> list of list of Face-like
        ...     def detect_batch(self, images): return [[type("F", (), {"box": np.array([0, 0, 8, 8])})()]] * len(images)
        >>> m = DetectionRate(Fixed()); m.update([np.zeros((8, 8, 3), np.uint8)], [np.array([0, 0, 8, 8])])
        >>> m.compute().value
        1.0
    """

    def __init__(self, detector):
        self.detector = detector
        super().__init__()

    def _reset(self):
        self._hits: list[bool] = []

    def update(self, images, reference_boxes):
        for faces, ref in zip(self.detector.detect_batch(list(images)), reference_boxes):
            self._hits.append(detected([f.box for f in faces], ref))

    def update_hits(self, hits):
        self._hits += [bool(h) for h in hits]

    def compute(self) -> MetricResult:
        n = len(self._hits)
        return MetricResult(float(np.mean(self._hits)) if n else float("nan"), n, self.failures.copy())
