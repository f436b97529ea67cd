"""Expression kept: the FER-2013 mini-Xception (:mod:`kpdp.faces.expression`) on the original's
face location in the original and in the anonymised image. ``expression_agreement`` = fraction of
faces with the same top class; ``expression_tv`` = mean total-variation distance between the two
class distributions (half the L1 distance: 0 = same distribution, 1 = disjoint).

The crop is always taken at the original's primary face box, so both images are judged at the
same place even where a method moved, shrank or removed the face.
"""
from __future__ import annotations

import json

import numpy as np

from bench.metrics.registry import MetricGroup, MetricSpec, PerImage, Row, mean_rows, register_group
from bench.timing import model_call
from kpdp.faces.expression import NAME, WEIGHTS, expression_probs


def compare(p_original, p_anonymised) -> tuple[bool, float]:
    """(same top class, total-variation distance) of two class distributions.

    Example:
        >>> compare([0.75, 0.25, 0.0], [0.25, 0.75, 0.0])
        (False, 0.5)
        >>> compare([0.5, 0.3, 0.2], [0.5, 0.3, 0.2])
        (True, 0.0)
    """
    p, q = np.asarray(p_original, np.float64), np.asarray(p_anonymised, np.float64)
    return bool(p.argmax() == q.argmax()), float(0.5 * np.abs(p - q).sum())


def probs_at_original_face(ctx) -> list[float]:
    with model_call(f"expression:{NAME}"):
        return [float(v) for v in expression_probs(ctx.image, ctx.primary)]


def _weights_digest() -> str:
    # the provenance JSON's hash, which loading checks against the file: new weights, new cache keys
    return json.loads(WEIGHTS.with_suffix(".json").read_text())["sha256"][:12]


@register_group
class ExpressionGroup(MetricGroup):
    name = "expression"
    version = f"1-{_weights_digest()}"
    needs = ()  # its one model is loaded here, once per process (kpdp.faces.expression.default_model)
    metrics = (MetricSpec("expression_agreement", "expression", NAME, True, "expression agreement", 0.02, rate=True,
                          definition="share of faces whose expression (7 classes, FER-2013 "
                                     "classifier) is the same on the original and the anonymised face",
                          unit="fraction of faces, 0–1"),
               MetricSpec("expression_tv", "expression", NAME, False, "expression TV", 0.02, rate=True,
                          definition="mean total-variation distance between the expression class "
                                     "probabilities of the original and the anonymised face",
                          unit="distance, 0–1"))

    def original(self, ctx):
        p = probs_at_original_face(ctx)
        # an output identical to its original gets exactly this, without running the model again
        return {"expr_probs_orig": p, "self": {"expr_probs": p, "expr_same_top": True, "expr_tv": 0.0}}, {}

    def anonymised(self, ctx):
        p = probs_at_original_face(ctx)
        same, tv = compare(ctx.orig_record["expr_probs_orig"], p)
        return {"expr_probs": p, "expr_same_top": same, "expr_tv": tv}, {}

    def per_image(self, cell) -> PerImage:
        recs = cell.probe_records()
        pos = [k for k, r in enumerate(recs) if "expr_tv" in r]
        return {(metric, NAME): (pos, np.array([float(recs[k][key]) for k in pos]))
                for metric, key in (("expression_agreement", "expr_same_top"), ("expression_tv", "expr_tv"))}

    def aggregate(self, cell) -> list[Row]:
        return mean_rows(cell, self.per_image(cell))
