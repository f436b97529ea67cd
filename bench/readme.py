"""The README's results tables, generated from committed reports so that no number is typed by hand.

A table is a block in the Markdown file between two comments; the opening comment names a report
spec (``reports/*.toml``, the same format ``bench report`` reads, with ``runs = [...]``)::

    <!-- results-table: reports/readme-lfw.toml -->
    | method | ε | ... |
    <!-- /results-table -->

The spec may add ``[labels]``, short column titles for the README (``"reid_rank1[max]" =
"strongest rank-1"``). ``python -m bench.readme README.md`` rewrites every block;
``--check`` exits 1 when one is stale (``tests/test_readme.py`` runs it on the project's README).
"""
from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

BLOCK = re.compile(r"(<!-- results-table: (?P<spec>\S+) -->\n)(?P<body>.*?)(<!-- /results-table -->)", re.S)


def render(spec_path: Path, base: Path) -> str:
    """The Markdown table (values with 95 % intervals, ``n``) that the spec's runs give."""
    from .report import ReportSpec, load_runs, table, to_markdown

    spec = ReportSpec.load(spec_path)
    runs = [base / r for r in spec.runs]
    missing = [str(r) for r in runs if not (r / "metrics.csv").is_file()]
    if missing:
        raise FileNotFoundError(f"{spec_path}: no metrics.csv in {', '.join(missing)}")
    t = table(load_runs(runs), spec, intervals=True)
    labels = tomllib.loads(spec_path.read_text()).get("labels", {})
    t = t.rename(columns={"eps": "ε", **labels})
    return to_markdown(t).strip() + "\n"


def update(text: str, base: Path) -> str:
    """``text`` with every results block regenerated (spec paths relative to ``base``)."""
    return BLOCK.sub(lambda m: m.group(1) + render(base / m.group("spec"), base) + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.readme", description=__doc__.splitlines()[0])
    p.add_argument("markdown", type=Path, nargs="?", default=Path("README.md"))
    p.add_argument("--check", action="store_true", help="exit 1 if a block differs from its reports")
    a = p.parse_args(argv)
    text = a.markdown.read_text()
    new = update(text, a.markdown.resolve().parent)
    n = len(BLOCK.findall(text))
    if a.check:
        stale = [m.group("spec") for m, k in zip(BLOCK.finditer(text), BLOCK.finditer(new)) if m.group(0) != k.group(0)]
        print(f"{n} results tables; stale: {', '.join(stale) or 'none'}")
        if stale:
            print(f"regenerate them: python -m bench.readme {a.markdown}", file=sys.stderr)
        return 1 if stale else 0
    a.markdown.write_text(new)
    print(f"{n} results tables regenerated in {a.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
