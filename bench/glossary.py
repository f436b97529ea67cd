"""What a report's reader needs without the code: one line per table column (definition, which
way is better, unit) and one per attacker.

Names, display labels and directions come from the metric registry (``bench.metrics.registry``)
and the attacker registry (``bench.attackers.registry``); this module adds only the plain-language
definition and unit of each metric (after ``../shared/docs/metrics.md``), which the registry does
not declare. A metric the registry knows without an entry here fails ``tests/test_report.py``.
"""
from __future__ import annotations

import html
import inspect
import re
import sys
from dataclasses import dataclass

#: metric name -> (one-line definition, unit)
METRICS: dict[str, tuple[str, str]] = {
    "reid_rank1": ("share of anonymised probes (photos of people with 2+ photos) whose nearest gallery face is the "
                   "same person; the probe's own photo is left out of the gallery (cross-image)",
                   "fraction of probes, 0–1"),
    "reid_rank1_same": ("as re-identification rank-1, but the gallery keeps the probe's own photo (its original, "
                        "or another release of it): can two releases of one photo be linked",
                        "fraction of probes, 0–1"),
    "reid_tar_far1e-3": ("share of (anonymised, other photo of the same person) pairs a recognizer accepts at the "
                         "threshold that falsely accepts 1 in 1,000 pairs of strangers",
                         "fraction of pairs, 0–1"),
    "intrusion_rate": ("share of anonymised faces whose nearest gallery face is a different real person, and "
                       "closer than real faces are to their closest stranger (99th percentile): the output "
                       "borrows someone else's identity", "fraction of probes, 0–1"),
    "detection_rate": ("share of anonymised images where the detector finds a face overlapping the original face "
                       "box (IoU ≥ 0.5)", "fraction of images, 0–1"),
    "fid": ("Fréchet distance between Inception-v3 features of the original and the anonymised images "
            "(0: the same distribution)", "distance, no unit"),
    "kid": ("kernel Inception distance between the original and the anonymised images (unbiased at small n, "
            "so it can fall slightly below 0 where the true distance is 0, as for the originals against "
            "themselves)", "distance, no unit"),
    "landmark_nme": ("mean distance of the 68 facial landmarks found on the anonymised face to those of the "
                     "original, over the distance between the outer eye corners", "fraction of eye distance"),
    "landmark_fail_rate": ("share of anonymised faces on which no landmarks are found", "fraction of faces, 0–1"),
    "landmark_nme_target": ("as landmark NME, but to the landmarks the method was asked to draw",
                            "fraction of eye distance"),
    "bg_psnr": ("peak signal-to-noise ratio between original and anonymised image outside the (dilated) face",
                "dB"),
    "bg_ssim": ("structural similarity between original and anonymised image outside the (dilated) face",
                "index, 0–1"),
    "expression_agreement": ("share of faces whose expression (7 classes, FER-2013 classifier) is the same on the "
                             "original and the anonymised face", "fraction of faces, 0–1"),
    "expression_tv": ("mean total-variation distance between the expression class probabilities of the original "
                      "and the anonymised face", "distance, 0–1"),
    "attribute_agreement": ("share of faces given the same label for a CelebA attribute on the original and the "
                            "anonymised face (`mean`: over the attributes the classifier predicts reliably)",
                            "fraction of faces, 0–1"),
    "pose_error": ("mean absolute difference of head yaw, pitch and roll (from the landmarks) between original "
                   "and anonymised face", "degrees"),
    "identity_diversity": ("mean cosine distance between anonymised faces of different people, over the same on "
                           "their originals (1: as varied as real people; near 0: every output is one face)",
                           "ratio"),
    "seam_step": ("how much lighter, darker or differently coloured the changed region is at its edge than "
                  "what surrounds it, beyond the original's own step there (a halo or a ring; mean over 16 "
                  "sectors of a ring inside against a ring outside the edge)", "grey levels, 0–255"),
    "sec_per_image": ("the method's own time per image in the run", "seconds"),
    "skipped": ("images not evaluated (the reasons are in the run's store)", "images"),
}

#: columns of a report table that are not metrics
FIXED_COLUMNS = {
    "method": "the anonymisation method (`original`: the untouched images, the reference)",
    "eps": "the privacy budget ε per face, for methods that have one (– otherwise; ∞: no noise); "
           "headed ε in the HTML, Markdown and LaTeX tables, eps in table.csv",
    "attacker": "the attacker whose re-identification is the headline value of the row: the strongest valid one",
    "n": "the number of probes or images the row's first value was computed on (metrics.csv has each value's n)",
}

#: how the HTML, Markdown and LaTeX tables head a fixed column (table.csv keeps the plain name)
READER_HEADS = {"eps": "ε"}

#: ``attacker = max`` is no attacker of its own: the harness takes the strongest valid one
MAX_ATTACKER = ("max", "the strongest valid attacker of each row (the highest re-identification among the attackers "
                "that passed their sanity check); the headline privacy value")


@dataclass(frozen=True)
class Entry:
    column: str
    label: str
    definition: str
    direction: str
    unit: str


def direction(spec) -> str:
    """Which way is better, from the registry's ``higher_is_better`` and ``privacy``."""
    if spec.higher_is_better is None:
        return "neither: reported for information"
    word = "higher" if spec.higher_is_better else "lower"
    return f"{word} is better for {'privacy' if spec.privacy else 'utility'}"


def _qualifier(spec, backend: str, attacker: str | None) -> str:
    parts = []
    if backend == "max" and spec.privacy:
        parts.append("the strongest recognizer, max over those run")
    elif backend and spec.backend in ("recognizer", "detector", "landmarker"):
        parts.append(f"measured with {backend}")
    elif backend and backend != spec.backend:
        parts.append(f"the `{backend}` row (metrics.csv's backend column)")
    if spec.privacy:
        parts.append(f"attacker {attacker}" if attacker else "the strongest valid attacker (see `attacker`)")
    return "; ".join(parts)


def metric_entry(column: str, metric: str, backend: str, attacker: str | None) -> Entry:
    """The glossary line of one table column."""
    from .metrics import registry

    spec = registry.all_metrics().get(metric)
    text, unit = METRICS.get(metric, ("no definition recorded", "–"))
    if spec is None:
        return Entry(column, metric, text, "–", unit)
    qual = _qualifier(spec, backend, attacker)
    return Entry(column, spec.label, text + (f". This column: {qual}" if qual else ""), direction(spec), unit)


def table_entries(columns) -> list[Entry]:
    """``columns``: the table's column names in order, each either a fixed column (a string) or
    ``(name, metric, backend, attacker)``."""
    out = []
    for c in columns:
        if isinstance(c, str):
            if c in FIXED_COLUMNS:
                out.append(Entry(c, READER_HEADS.get(c, c), FIXED_COLUMNS[c], "–", "–" if c != "n" else "count"))
        else:
            out.append(metric_entry(*c))
    return out


def _first_paragraph(text: str | None) -> str:
    para = re.split(r"\n\s*\n", (text or "").strip())[0]
    para = " ".join(line.strip() for line in para.splitlines())
    return re.sub(r"^``[^`]+``:\s*", "", para)  # "``lazy``: can run the method" -> "can run the method"


def attacker_entries() -> list[tuple[str, str, str, str]]:
    """(name, description, gallery, training) of every registered attacker (the class's own
    docstring, else its module's), then ``max``."""
    from .attackers import registry

    galleries = {"original": "the clean originals", "anonymised": "every evaluation image anonymised again"}
    out = []
    for name in registry.available():
        cls = registry.get_attacker(name)
        doc = cls.__dict__.get("__doc__") or inspect.getdoc(sys.modules.get(cls.__module__))
        out.append((name, _first_paragraph(doc) or "no description recorded",
                    galleries.get(cls.gallery, cls.gallery), "adapts to the method" if cls.trains else "off the shelf"))
    out.append((MAX_ATTACKER[0], MAX_ATTACKER[1], "–", "–"))
    return out


def to_markdown(entries: list[Entry], attackers) -> str:
    lines = ["# Glossary", "", "## Table columns", "", "| column | what it is | better | unit |", "|---|---|---|---|"]
    lines += [f"| {e.column} | {e.label + ': ' if e.label != e.column else ''}{e.definition} | {e.direction} | "
              f"{e.unit} |" for e in entries]
    lines += ["", "## Attackers", "", "| attacker | who | gallery | recognizer |", "|---|---|---|---|"]
    lines += [f"| {n} | {d.replace('``', '`')} | {g} | {t} |" for n, d, g, t in attackers]
    return "\n".join(lines) + "\n"


def _code(text: str) -> str:
    """HTML of text whose ``code`` or `code` spans become <code>."""
    return re.sub(r"``?([^`]+)``?", r"<code>\1</code>", html.escape(text))


def to_html(entries: list[Entry], attackers) -> str:
    rows = "".join(f"<tr><td><code>{html.escape(e.column)}</code></td><td>"
                   f"{'<b>' + html.escape(e.label) + '</b>: ' if e.label != e.column else ''}{_code(e.definition)}"
                   f"</td><td>{html.escape(e.direction)}</td><td>{html.escape(e.unit)}</td></tr>" for e in entries)
    att = "".join(f"<tr><td><code>{html.escape(n)}</code></td><td>{_code(d)}</td><td>{html.escape(g)}</td>"
                  f"<td>{html.escape(t)}</td></tr>" for n, d, g, t in attackers)
    return ("<h2 id='glossary'>Glossary</h2><h3>Table columns</h3><table><tr><th>column</th><th>what it is</th>"
            f"<th>better</th><th>unit</th></tr>{rows}</table><h3>Attackers</h3><p>A privacy value is the "
            "re-identification by one attacker; attackers differ in what they know.</p><table><tr><th>attacker</th>"
            f"<th>who</th><th>gallery</th><th>recognizer</th></tr>{att}</table>")
