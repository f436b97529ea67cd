"""The results tables of the README, the report pages and the docs, generated from committed reports so
that no number is typed by hand.

A table is a block in a Markdown file between two comments; the opening comment names a report
spec (``reports/*.toml``, the same format ``bench report`` reads, with ``runs = [...]``)::

    <!-- results-table: reports/readme-headline.toml -->
    | method | ε | ... |
    <!-- /results-table -->

The spec's path is relative to the Markdown file's directory (``../readme-celeba.toml`` in
``reports/celeba/README.md``); the spec's ``runs`` are relative to the project root, the nearest
directory above the Markdown file that holds ``pyproject.toml`` (the Markdown file's own directory
when none does), as ``bench report`` reads them from the root. The spec may add ``[labels]``, short
column titles (``"reid_rank1[max]" = "strongest rank-1"``), and ``[method_labels]``, short method names
(``"kpdp[blend=poisson,generator=v3]" = "kpdp v3"``), as ``bench report`` shows them.

``python -m bench.report.readme`` rewrites every block of the project's files that hold one (``README.md``
and every Markdown file under ``reports/`` and ``docs/``); ``python -m bench.report.readme FILE...`` only
those files. ``--check`` writes nothing and exits 1 when a block is stale (``tests/bench/report/test_readme.py``
runs it on every file of the project that holds a block).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tomllib
from pathlib import Path

from bench.report.page import ReportSpec, load_runs, table, to_markdown

BLOCK = re.compile(r"(<!-- results-table: (?P<spec>\S+) -->\n)(?P<body>.*?)(<!-- /results-table -->)", re.S)

#: where, under the project root, Markdown files with blocks are looked for (besides README.md)
FOLDERS = ("reports", "docs")


def project_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` that holds ``pyproject.toml``; ``start`` when none does."""
    start = start.resolve()
    for d in (start, *start.parents):
        if (d / "pyproject.toml").is_file():
            return d
    return start


def render(spec_path: Path, base: Path) -> str:
    """The Markdown table (values with 95 % intervals, ``n``) that the spec's runs (relative to ``base``) give."""

    spec = ReportSpec.load(spec_path)
    runs = [base / r for r in spec.runs]
    missing = [str(r) for r in runs if not (r / "metrics.csv").is_file()]
    if missing:
        raise FileNotFoundError(f"{spec_path}: no metrics.csv in {', '.join(missing)}")
    df, spec = spec.relabelled(load_runs(runs))  # ``[method_labels]``: a short name for a long method spec
    t = table(df, spec, intervals=True)
    labels = tomllib.loads(spec_path.read_text()).get("labels", {})
    t = t.rename(columns={"eps": "ε", **labels})
    return to_markdown(t).strip() + "\n"


def update(text: str, base: Path, root: Path | None = None) -> str:
    """``text`` with every results block regenerated: spec paths relative to ``base`` (the Markdown
    file's directory), the specs' runs relative to ``root`` (default: the project root above ``base``)."""
    root = project_root(base) if root is None else root
    return BLOCK.sub(lambda m: m.group(1) + render(base / m.group("spec"), root) + m.group(4), text)


def holds_block(path: Path) -> bool:
    try:
        return BLOCK.search(path.read_text(encoding="utf-8")) is not None
    except (OSError, UnicodeDecodeError):
        return False


def project_markdowns(root: Path) -> list[Path]:
    """``README.md`` and every Markdown file under ``reports/`` and ``docs/`` that holds a block."""
    found = [root / "README.md"] if (root / "README.md").is_file() else []
    for folder in FOLDERS:
        for dirpath, dirnames, filenames in os.walk(root / folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(".md")]
    return [p for p in found if p.name == "README.md" and p.parent == root or holds_block(p)]


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.report.readme", description=__doc__.splitlines()[0])
    p.add_argument("markdown", type=Path, nargs="*",
                   help="Markdown files (default: README.md and every file under reports/ and docs/ with a block)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a block differs from its reports")
    a = p.parse_args(argv)
    files = a.markdown or project_markdowns(project_root(Path.cwd()))
    stale_files, total = [], 0
    for md in files:
        text = md.read_text()
        new = update(text, md.resolve().parent)
        n = len(BLOCK.findall(text))
        total += n
        if a.check:
            stale = [m.group("spec") for m, k in zip(BLOCK.finditer(text), BLOCK.finditer(new))
                     if m.group(0) != k.group(0)]
            print(f"{_display(md)}: {n} results tables; stale: {', '.join(stale) or 'none'}")
            if stale:
                stale_files.append(_display(md))
        else:
            if new != text:
                md.write_text(new)
            print(f"{_display(md)}: {n} results tables regenerated")
    if a.check and stale_files:
        print(f"regenerate them: python -m bench.report.readme {' '.join(stale_files)}", file=sys.stderr)
        return 1
    if len(files) > 1:
        print(f"{total} results tables in {len(files)} files{'; all fresh' if a.check else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
