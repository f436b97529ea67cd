"""The harness's re-identification group (what ``--metrics reid`` measures): each recognizer
embeds every original and every anonymised face at the original's face location; the attackers
(:mod:`bench.attackers`) compare them, and :func:`attack_rows` turns their outcomes into rows with
intervals. The scores themselves (rank-1, TAR@FAR, intrusion) are :mod:`bench.metrics.reid_scores`.
"""
from __future__ import annotations

import numpy as np

from bench.attackers.outcomes import attack
from bench.attackers.registry import IGNORANT
from bench.measure.analysis import face_from_json, face_to_json
from bench.metrics.detection import best_match
from bench.metrics.intervals import bootstrap_max, bootstrap_mean
from bench.metrics.registry import STRONGEST, MetricGroup, MetricSpec, Row, register_group
from bench.metrics.reid_scores import INTRUSION_RATE, REID_RANK1, REID_RANK1_SAME, REID_TAR_FAR
from bench.timing import model_call


@register_group
class ReidGroup(MetricGroup):
    """Re-identification by off-the-shelf recognizers, each embedding the face at the location and
    alignment found on the *original* (FaceNet-family models on the matching MTCNN box)."""

    name = "reid"
    version = "2"
    needs = ("recognizers",)
    uses_detectors = ("mtcnn",)  # FaceNet-family crops
    metrics = (
        MetricSpec(REID_RANK1, "reid", "recognizer", False, "re-identification rank-1", 0.02, privacy=True,
                   rate=True, headline="privacy",
                   definition="share of anonymised probes (photos of people with 2+ photos) whose "
                              "nearest gallery face is the same person; the probe's own photo is left"
                              " out of the gallery (cross-image)",
                   unit="fraction of probes, 0–1"),
        MetricSpec(REID_RANK1_SAME, "reid", "recognizer", False, "re-id rank-1 (same image)", 0.02,
                   privacy=True, rate=True,
                   definition="as re-identification rank-1, but the gallery keeps the probe's own "
                              "photo (its original, or another release of it): can two releases of "
                              "one photo be linked",
                   unit="fraction of probes, 0–1"),
        MetricSpec(REID_TAR_FAR, "reid", "recognizer", False, "TAR@FAR1e-3", 0.02, privacy=True, rate=True,
                   definition="share of (anonymised, other photo of the same person) pairs a "
                              "recognizer accepts at the threshold that falsely accepts 1 in 1,000 "
                              "pairs of strangers",
                   unit="fraction of pairs, 0–1"),
        MetricSpec(INTRUSION_RATE, "reid", "recognizer", False, "intrusion", 0.02, privacy=True, rate=True,
                   definition="share of anonymised faces whose nearest gallery face is a different "
                              "real person, and closer than real faces are to their closest stranger "
                              "(99th percentile): the output borrows someone else's identity",
                   unit="fraction of probes, 0–1"),
    )

    def original(self, ctx):
        record, feats = {"rec_face": {}}, {}
        for name, rec in ctx.backends.recs.items():
            face = ctx.primary
            if rec.needs == "box":  # FaceNet-family preprocessing is defined on MTCNN boxes
                m = best_match(ctx.detect("mtcnn"), ctx.primary.box)
                face = type(face)(m.box, ctx.primary.landmarks) if m is not None else ctx.primary
            record["rec_face"][name] = face_to_json(face)
            with _model_call(f"recognizer:{name}"):
                feats[f"emb:{name}"] = rec.embed(ctx.image, face)
        return record, feats

    def anonymised(self, ctx):
        feats = {}
        for name, rec in ctx.backends.recs.items():
            with _model_call(f"recognizer:{name}"):
                feats[f"emb:{name}"] = rec.embed(ctx.image, face_from_json(ctx.orig_record["rec_face"][name]))
        return {}, feats

    def aggregate(self, cell) -> list[Row]:
        """Rows per (attacker, recognizer), per attacker over its recognizers (``backend = max``) and
        the strongest valid attack (``attacker = max``, ``backend = max``): the headline."""
        if not cell.probes:
            return []
        attackers = list(getattr(cell, "attackers", None) or [IGNORANT])
        out = cell.memo("attack", (cell.method, cell.eps, cell.seed), lambda: attack(cell, attackers))
        invalid = getattr(cell, "shared", {}).get("invalid_attackers", {})
        return attack_rows(out, [spec.name for spec in self.metrics], {a: cell.recognizers for a in attackers},
                           invalid, cell.boot_seed)


def attack_rows(outcomes, metrics: list[str], recognizers: dict[str, list[str]], invalid: dict,
                boot_seed: int) -> list:
    """Rows per (attacker, recognizer), per attacker over its recognizers (``backend = max``) and
    the strongest valid attack (``attacker = max``, ``backend = max``) from the per-probe hits of
    :func:`bench.attackers.outcomes.attack` (``recognizers``: {attacker: the recognizers it used})."""
    rows = []
    for m in metrics:
        groups = outcomes.pair_groups if m == REID_TAR_FAR else outcomes.groups
        if groups is None or len(groups) == 0:
            continue
        strongest = []
        for a, recs in recognizers.items():
            per_rec = [outcomes.hits[(a, rec)][m] for rec in recs]
            if any(h.size != len(groups) for h in per_rec):  # no TAR threshold (one person only)
                continue
            valid = a not in invalid
            for rec, hits in zip(recs, per_rec):
                rows.append(Row(m, rec, float(hits.mean()), int(hits.size),
                                *bootstrap_mean(hits.astype(float), groups, seed=boot_seed), a, valid))
            stacked = np.stack(per_rec).astype(float)  # the same probes for every recognizer
            rows.append(Row(m, STRONGEST, float(stacked.mean(1).max()), int(stacked.shape[1]),
                            *bootstrap_max(stacked, groups, seed=boot_seed), a, valid))
            if valid:
                strongest += per_rec
        if strongest:
            stacked = np.stack(strongest).astype(float)
            rows.append(Row(m, STRONGEST, float(stacked.mean(1).max()), int(stacked.shape[1]),
                            *bootstrap_max(stacked, groups, seed=boot_seed), STRONGEST))
    return rows


def _model_call(name):
    return model_call(name)
