"""What a report's reader needs without the code: one line per table column (definition, which
way is better, unit) and one per attacker.

Every metric's name, label, direction, definition and unit come from its declaration in the metric
registry (:class:`bench.metrics.registry.MetricSpec`), every attacker's description from its class
(``bench.attackers.registry``); this module only words and lays them out. A metric declared without
a definition or unit fails ``tests/bench/report/test_page.py``.
"""
from __future__ import annotations

import html
import inspect
import re
import sys
from dataclasses import dataclass

from bench.attackers import registry as attacker_registry
from bench.metrics import registry as metric_registry
from bench.metrics.registry import STRONGEST

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
MAX_ATTACKER = (STRONGEST, "the strongest valid attacker of each row (the highest re-identification among the attackers "
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
    if backend == STRONGEST and spec.privacy:
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

    spec = metric_registry.all_metrics().get(metric)
    if spec is None:
        return Entry(column, metric, "no definition recorded", "–", "–")
    text, unit = spec.definition or "no definition recorded", spec.unit or "–"
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

    galleries = {"original": "the clean originals", "anonymised": "every evaluation image anonymised again"}
    out = []
    for name in attacker_registry.available():
        cls = attacker_registry.get_attacker(name)
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
