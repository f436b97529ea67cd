"""Head pose kept (``../shared/docs/metrics.md``): yaw, pitch and roll of the original face and of
the anonymised one, each from its 68 landmarks (:func:`kpdp.faces.pose.head_pose`);
``pose_error`` is the mean absolute difference in degrees per angle (backend column ``yaw``,
``pitch``, ``roll``) and of the three (``mean``).

The original's angles come from the original's landmarks (``ctx.primary``, as the landmark NME's
reference). The anonymised image's landmarks are the landmarks group's (``lm_found`` of its
record), so the landmark model runs once per image; when that group is not selected this group
runs the same :func:`bench.metrics.landmarks.landmarks_on` itself. Images where no landmarks are
found are counted by ``landmark_fail_rate``, never here.
"""
from __future__ import annotations

import numpy as np

from bench.metrics.landmarks import landmarks_on
from bench.metrics.registry import MetricGroup, MetricSpec, PerImage, Row, mean_rows, register_group
from kpdp.faces.pose import head_pose

ANGLES = ("yaw", "pitch", "roll")


def pose_or_none(landmarks, shape) -> list[float] | None:
    """[yaw, pitch, roll] of 68 landmarks, None when there are none or the fit fails."""

    if landmarks is None:
        return None
    try:
        return [round(a, 3) for a in head_pose(np.asarray(landmarks, np.float64), shape)]
    except ValueError:
        return None


def pose_errors(original, anonymised) -> np.ndarray:
    """(N, 4) absolute yaw, pitch, roll differences and their mean, over pairs where both exist.

    Example:
        >>> pose_errors([[10, 0, 5], [0, 0, 0]], [[4, 1, 5], None]).tolist()
        [[6.0, 1.0, 0.0, 2.3333333333333335]]
    """
    d = np.array([np.abs(np.subtract(a, o)) for o, a in zip(original, anonymised) if o is not None and a is not None],
                 np.float64).reshape(-1, 3)
    return np.concatenate([d, d.mean(1, keepdims=True)], 1)


@register_group
class PoseGroup(MetricGroup):
    """Depends on the landmarks group's records when it is selected (see the module docstring)."""

    name = "pose"
    version = "1"
    needs = ("landmarker",)  # only used when the landmarks group is not selected
    cached = False  # a perspective-n-point fit costs less than a cache round trip
    metrics = (MetricSpec("pose_error", "pose", "", False, "pose error (deg)", 0.5,
                          definition="mean absolute difference of head yaw, pitch and roll (from the "
                                     "landmarks) between original and anonymised face",
                          unit="degrees"),)

    def anonymised(self, ctx):
        if any(g.name == "landmarks" for g in ctx.backends.groups):
            return {}, {}

        return {"pose_lm_found": landmarks_on(ctx)["lm_found"]}, {}

    def finish(self, record, ctx):
        # the landmarks group's record is complete only here, after every group measured the image
        found = record["lm_found"] if "lm_found" in record else record.get("pose_lm_found")
        return {"pose_original": pose_or_none(ctx.primary.landmarks, ctx.image.shape),
                "pose_anonymised": pose_or_none(found, ctx.image.shape)}

    def per_image(self, cell) -> PerImage:
        recs = cell.probe_records()
        pos = [k for k, r in enumerate(recs) if r.get("pose_original") is not None
               and r.get("pose_anonymised") is not None]
        if not pos:
            return {}
        err = pose_errors([recs[k]["pose_original"] for k in pos], [recs[k]["pose_anonymised"] for k in pos])
        return {("pose_error", name): (pos, err[:, k]) for k, name in enumerate(ANGLES + ("mean",))}

    def aggregate(self, cell) -> list[Row]:
        return mean_rows(cell, self.per_image(cell))
