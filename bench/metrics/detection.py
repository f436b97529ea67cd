"""Detection rate: does a detector still find the face where the original's face was?

A hit is any detected box with IoU >= 0.5 against the original's face box (boxes are
``(x0, y0, x1, y1)``, ``x1``/``y1`` exclusive). The rate on the originals themselves is reported as the
reference row (method ``original``), by the same rule.

Which box is "the original's face box", per detector: detectors disagree on box conventions
(dlib's HOG box is tight on the brows-to-chin square, MTCNN's includes the forehead), so the
reference of a detector is *its own* box on the original when it found the labelled face there
(IoU >= 0.3 with the face finder's box), otherwise the face finder's box. One rule for every
row: hit = a detection with IoU >= 0.5 against that reference. A method can therefore score above
the originals: where a detector missed the original face (a profile, a shadow), the face that a
generator draws there may be frontal and clear enough to be found at the finder's box.
"""
from __future__ import annotations

import numpy as np

from bench.metrics.base import MetricResult
from bench.metrics.intervals import wilson
from bench.metrics.registry import MetricGroup, MetricSpec, Row, register_group

IOU_THRESHOLD = 0.5
MATCH_IOU = 0.3  # a detection on the original "is" the labelled face when it overlaps the finder's box this much


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


def best_match(faces: list, box: np.ndarray, threshold: float = MATCH_IOU):
    """The detected face overlapping ``box`` most, if by at least ``threshold``; else None."""
    scored = [(iou(f.box, box), f) for f in faces]
    scored = [s for s in scored if s[0] >= threshold]
    return max(scored, key=lambda s: s[0])[1] if scored else None


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


# -- the harness's group ---------------------------------------------------------------------------


@register_group
class DetectionGroup(MetricGroup):
    name = "detection"
    version = "2"
    needs = ("detectors",)
    metrics = (MetricSpec("detection_rate", "detection", "detector", True, "detection rate", 0.02, rate=True,
                         headline="detection",
                          definition="share of anonymised images where the detector finds a face "
                                     "overlapping the original face box (IoU ≥ 0.5)",
                          unit="fraction of images, 0–1"),)

    def original(self, ctx):
        ref, hit = {}, {}
        for name in ctx.backends.dets:
            found = ctx.detect(name)
            m = best_match(found, ctx.primary.box)
            ref[name] = [float(v) for v in (m.box if m is not None else ctx.primary.box)]
            hit[name] = detected([f.box for f in found], np.array(ref[name]))
        return {"det_ref": ref, "self": {"det_hit": hit}}, {}

    def anonymised(self, ctx):
        hit = {name: detected([f.box for f in ctx.detect(name)], np.array(ctx.orig_record["det_ref"][name]))
               for name in ctx.backends.dets}
        return {"det_hit": hit}, {}

    def aggregate(self, cell) -> list[Row]:
        rows = []
        for det in cell.detectors:
            hits = [bool(r["det_hit"][det]) for r in cell.probe_records()]
            if hits:
                rows.append(Row("detection_rate", det, float(np.mean(hits)), len(hits), *wilson(sum(hits), len(hits))))
        return rows
