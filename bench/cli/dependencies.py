"""``python -m bench.cli.dependencies``: the installed version of each direct dependency against
the range this project was tested with (:mod:`bench.run.dependencies`); exits 1 when one is outside
it. A module of its own under ``cli``, not ``python -m bench.run.dependencies``: ``bench`` imports
that module when it starts, and Python warns when a module it has imported is run as ``__main__``."""
from __future__ import annotations

import argparse
import sys

from bench.run.dependencies import installed_version, problems, requirements


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cli.dependencies",
                                description="the installed version of each direct dependency against its tested range")
    p.add_argument("--quiet", action="store_true", help="print only what is out of range")
    quiet = p.parse_args(argv).quiet
    reqs = requirements()
    bad = problems(reqs)
    if not quiet:
        for r in reqs:
            print(f"{r.name:24s} {installed_version(r.name) or '-':14s} {r.specifier}")
    for line in bad:
        print(f"error: {line}", file=sys.stderr)
    if bad:
        print(f"error: {len(bad)} of {len(reqs)} dependencies outside the tested range; install with "
              "pip install -c constraints.txt -e . for the tested versions", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
