"""Landmark error (NME): mean point-to-point error over the 68 points divided by the distance
between the outer eye corners (points 36 and 45) of the *reference* landmarks. Images where the
landmark model finds nothing count in the failure rate, never in the mean."""
from __future__ import annotations

import numpy as np

from .base import Metric, MetricResult


def nme(predicted: np.ndarray, reference: np.ndarray) -> float:
    """NME of one landmark set against a reference.

    Example:
        >>> ref = np.zeros((68, 2)); ref[36] = [0, 0]; ref[45] = [10, 0]
        >>> nme(ref + [1, 0], ref)
        0.1
    """
    predicted, reference = np.asarray(predicted, np.float64), np.asarray(reference, np.float64)
    d = np.linalg.norm(reference[36] - reference[45])
    if d <= 0:
        raise ValueError("reference landmarks have coincident outer eye corners")
    return float(np.linalg.norm(predicted - reference, axis=1).mean() / d)


def landmark_nme(predicted: list, reference: list) -> tuple[MetricResult, MetricResult]:
    """Functional twin. ``predicted[i] is None`` = the landmark model failed on image i.
    Returns (mean NME over successes, failure rate over all)."""
    ok = [nme(p, r) for p, r in zip(predicted, reference) if p is not None]
    n = len(predicted)
    return (MetricResult(float(np.mean(ok)) if ok else float("nan"), len(ok)),
            MetricResult((n - len(ok)) / n if n else float("nan"), n))


class LandmarkError(Metric):
    """Accumulates NME to the original's landmarks and, when given, to the method's targets.

    Example:
        >>> ref = np.zeros((68, 2)); ref[45] = [10, 0]
        >>> m = LandmarkError(); m.update([ref + [0, 2], None], [ref, ref])
        >>> r = m.compute(); round(r["landmark_nme"].value, 3), r["landmark_fail_rate"].value
        (0.2, 0.5)
    """

    def _reset(self):
        self._pred, self._ref, self._tgt_pred, self._tgt = [], [], [], []

    def update(self, predicted, reference, targets=None):
        self._pred += list(predicted)
        self._ref += list(reference)
        if targets is not None:
            for p, t in zip(predicted, targets):
                if t is not None:
                    self._tgt_pred.append(p)
                    self._tgt.append(t)

    def compute(self) -> dict[str, MetricResult]:
        out = dict(zip(("landmark_nme", "landmark_fail_rate"), landmark_nme(self._pred, self._ref)))
        if self._tgt:
            out["landmark_nme_target"] = landmark_nme(self._tgt_pred, self._tgt)[0]
        return out
