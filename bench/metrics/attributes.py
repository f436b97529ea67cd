"""Attributes kept: CelebA attribute probes (:mod:`bench.metrics.attribute_probes`) on the original and
on the anonymised face; ``attribute_agreement`` = the fraction of faces on which both get the same
predicted label, per attribute the probes predict with balanced accuracy >= 0.80 on held-out
CelebA people (backend column = the attribute's name) and their ``mean``.

Both images are read at the *original's* face location: the aligned face square from the
original's 68 landmarks, read from the original and from the anonymised image alike, so a method
cannot keep or lose attributes by moving the face. The features come from the Inception pass that
FID makes of the whole image (:meth:`bench.measure.analysis.ImageContext.inception`): the network
runs once per image for both groups (:mod:`bench.metrics.attribute_probes`).
"""
from __future__ import annotations

import json

import numpy as np

from bench.metrics.attribute_probes import DEFAULT_OUT, face_features, load_probes
from bench.metrics.intervals import bootstrap_replicates, percentile_interval
from bench.metrics.registry import MetricGroup, MetricSpec, PerImage, Row, register_group
from bench.timing import model_call

FEATURE = "attr"  # per-image feature key: the probes' logits of all 40 attributes


def _probes_tag() -> str:
    try:
        return json.loads(DEFAULT_OUT.with_suffix(".json").read_text())["weights_sha256"][:12]
    except (OSError, ValueError, KeyError):
        return "missing"


def agreement_rows(orig_logits: np.ndarray, anon_logits: np.ndarray, identities, attributes: list[str],
                   used: list[str], seed: int = 0) -> list[Row]:
    """One ``attribute_agreement`` row per used attribute and their ``mean``, each with an
    identity-bootstrap interval (one joint resampling for every row).

    Example:
        >>> o = np.array([[1.0, -1.0], [2.0, 3.0], [-1.0, 1.0]])
        >>> a = np.array([[0.5, -2.0], [1.0, -3.0], [-1.0, 1.0]])
        >>> rows = agreement_rows(o, a, ["p", "p", "q"], ["Male", "Smiling"], ["Male", "Smiling"])
        >>> [(r.backend, round(r.value, 3), r.n) for r in rows]
        [('Male', 1.0, 3), ('Smiling', 0.667, 3), ('mean', 0.833, 3)]
    """
    values = agreement(orig_logits, anon_logits, attributes, used)
    reps = bootstrap_replicates(values, identities, seed=seed)
    n = values.shape[1]
    return [Row("attribute_agreement", name, float(values[k].mean()), n, *percentile_interval(reps[:, k]))
            for k, name in enumerate([*used, "mean"])]


def agreement(orig_logits: np.ndarray, anon_logits: np.ndarray, attributes: list[str], used: list[str]) -> np.ndarray:
    """(U + 1, N) per face: 1 where a used attribute's label is the same on both, then the mean of each face."""
    idx = [attributes.index(a) for a in used]
    same = ((np.asarray(orig_logits)[:, idx] > 0) == (np.asarray(anon_logits)[:, idx] > 0)).astype(np.float64)
    return np.vstack([same.T, same.mean(1)[None]])


@register_group
class AttributeGroup(MetricGroup):
    """Agreement of the CelebA attribute probes between each original and its anonymised image."""

    name = "attributes"
    version = "1+" + _probes_tag()  # retrained probes must not reuse cached logits
    needs = ("inception",)
    # backend '': no fixed name, the column varies (each attribute's name and `mean`), as pose's does
    metrics = (MetricSpec("attribute_agreement", "attributes", "", True, "attributes kept", 0.02, rate=True,
                          definition="share of faces given the same label for a CelebA attribute on "
                                     "the original and the anonymised face (`mean`: over the "
                                     "attributes the classifier predicts reliably)",
                          unit="fraction of faces, 0–1"),)

    def _measure(self, ctx):
        maps = ctx.inception()  # timed as "inception": the one forward FID reads too
        with model_call("attributes"):
            feats = face_features(maps, ctx.primary.landmarks, ctx.image.shape)
            return {}, {FEATURE: load_probes().logits(feats[None])[0]}

    def original(self, ctx):
        return self._measure(ctx)

    def anonymised(self, ctx):
        return self._measure(ctx)

    def per_image(self, cell) -> PerImage:
        orig = cell.gallery_feats.get(FEATURE)
        if not cell.probes or orig is None:
            return {}
        have = [k for k, p in enumerate(cell.probes) if FEATURE in p[2]]  # absent: not measured
        if not have:
            return {}
        probes = load_probes()
        anon = np.stack([np.asarray(cell.probes[k][2][FEATURE], np.float64) for k in have])
        values = agreement(orig[cell.probe_index[have]], anon, probes.attributes, probes.used)
        return {("attribute_agreement", name): (have, values[k]) for k, name in enumerate([*probes.used, "mean"])}

    def aggregate(self, cell) -> list[Row]:
        orig = cell.gallery_feats.get(FEATURE)
        if not cell.probes or orig is None:
            return []
        probes = load_probes()
        return agreement_rows(orig[cell.probe_index], cell.probe_features(FEATURE), cell.probe_identities,
                              probes.attributes, probes.used, seed=cell.boot_seed)
