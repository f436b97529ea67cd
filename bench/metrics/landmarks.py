"""Landmark error (NME): mean point-to-point error over the 68 points divided by the distance
between the outer eye corners (points 36 and 45) of the *reference* landmarks. Images where the
landmark model finds nothing count in the failure rate, never in the mean."""
from __future__ import annotations

import numpy as np

from bench.metrics.base import MetricResult
from bench.metrics.detection import best_match
from bench.metrics.intervals import wilson
from bench.metrics.registry import MetricGroup, MetricSpec, PerImage, Row, mean_rows, register_group
from bench.timing import model_call


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


# -- the harness's group ---------------------------------------------------------------------------

#: detectors that place the landmark model on an image, tried in order (the face must overlap the
#: original's labelled face)
LANDMARK_DETECTORS = ("dlib-hog", "mtcnn")


def landmarks_on(ctx) -> dict:
    """Landmarks found on ``ctx.image`` where a detector sees the original's labelled face, and
    their NME to the original's landmarks. One function for originals and anonymised images."""

    found = None
    for det in LANDMARK_DETECTORS:
        found = best_match(ctx.detect(det), ctx.primary.box)
        if found is not None:
            break
    if found is None:
        return {"lm_fail": True, "lm_found": None, "nme": None}
    with model_call("landmarks"):
        lm = ctx.backends.lm.landmarks(ctx.image, found)
    return {"lm_fail": False, "lm_found": lm.round(3).tolist(), "nme": nme(lm, ctx.primary.landmarks)}


@register_group
class LandmarkGroup(MetricGroup):
    name = "landmarks"
    version = "2"
    needs = ("landmarker",)
    metrics = (
        MetricSpec("landmark_nme", "landmarks", "landmarker", False, "NME", 0.01,
                   definition="mean distance of the 68 facial landmarks found on the anonymised face "
                              "to those of the original, over the distance between the outer eye "
                              "corners",
                   unit="fraction of eye distance"),
        MetricSpec("landmark_fail_rate", "landmarks", "landmarker", False, "landmark fails", 0.02, rate=True,
                   definition="share of anonymised faces on which no landmarks are found",
                   unit="fraction of faces, 0–1"),
        MetricSpec("landmark_nme_target", "landmarks", "landmarker", False, "NME to target", 0.01,
                   definition="as landmark NME, but to the landmarks the method was asked to draw",
                   unit="fraction of eye distance"),
    )

    def original(self, ctx):
        return {"self": landmarks_on(ctx)}, {}

    def anonymised(self, ctx):
        return landmarks_on(ctx), {}

    def finish(self, record, ctx):
        # the target depends on the method, not on the pixels: never cached with them
        if ctx.target is not None and record.get("lm_found") is not None:
            return {"nme_target": nme(np.array(record["lm_found"]), ctx.target)}
        return {}

    def per_image(self, cell) -> PerImage:
        recs = cell.probe_records()
        lm = getattr(cell.backends, "landmarker", "")  # no backends: a stored cell re-read (bench compare)
        ok = [k for k, r in enumerate(recs) if "lm_fail" in r and not r["lm_fail"]]  # absent: not measured
        tgt = [k for k, r in enumerate(recs) if r.get("nme_target") is not None]
        return {("landmark_nme", lm): (ok, np.array([recs[k]["nme"] for k in ok], np.float64)),
                ("landmark_nme_target", lm): (tgt, np.array([recs[k]["nme_target"] for k in tgt], np.float64))}

    def aggregate(self, cell) -> list[Row]:
        recs = cell.probe_records()
        if not recs:
            return []
        per = self.per_image(cell)
        nme, target = (mean_rows(cell, {k: v for k, v in per.items() if k[0] == metric})
                       for metric in ("landmark_nme", "landmark_nme_target"))
        fails = sum(bool(r["lm_fail"]) for r in recs)
        fail_rate = Row("landmark_fail_rate", cell.backends.landmarker, fails / len(recs), len(recs),
                        *wilson(fails, len(recs)))
        return nme + [fail_rate] + target
