"""``python -m bench.cli.recon --run RUN_DIR``: the reconstruction attackers (``recon-wiener``,
``recon-learned``) on a finished run (:mod:`bench.run.recon`), then ``metrics.csv`` and
``summary.md`` rewritten; :func:`after_grid` is what ``bench run --attackers ...,recon-*`` calls."""
from __future__ import annotations

import argparse
import sys

from bench.methods import split_specs
from bench.report.export import write_exports
from bench.run.recon import RECON_ATTACKERS, attack_run
from bench.store.provenance import append_command
from bench.store.results import ResultStore


def run(run_dir, attackers, methods=None, eps=None, seeds=None, log=print, argv=None) -> list:
    """:func:`bench.run.recon.attack_run`, the command recorded in the run (``argv``), the exports
    rewritten."""
    if argv:
        store = ResultStore(run_dir)
        append_command(store, argv)
        store.close()
    written = attack_run(run_dir, attackers, methods, eps, seeds, log)
    store = ResultStore(run_dir)
    try:
        write_exports(store, store.aggregates())
    finally:
        store.close()
    return written


def after_grid(run_dir, pixel_attackers: list[str], quiet: bool = False) -> None:
    """Run the reconstruction attackers among ``pixel_attackers`` on the run ``bench run`` just made."""
    mine = [a for a in pixel_attackers if a in RECON_ATTACKERS]
    if mine:
        run(run_dir, mine, log=(lambda m: None) if quiet else print)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cli.recon",
                                description="run the reconstruction attackers on a finished run, appending their "
                                "rows to its results")
    p.add_argument("--run", required=True, help="run directory (its results.sqlite)")
    p.add_argument("--attackers", default=",".join(RECON_ATTACKERS), help=f"any of {', '.join(RECON_ATTACKERS)}")
    p.add_argument("--methods", help="comma-separated method specs of the run (default: all); the sanity check's "
                   "reference cells (original, blur) are always attacked")
    p.add_argument("--eps", help="comma-separated ε of the run (default: all)")
    p.add_argument("--seeds", help="comma-separated seeds of the run (default: all)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    names = [x for x in a.attackers.split(",") if x]
    unknown = sorted(set(names) - set(RECON_ATTACKERS))
    if unknown:
        p.error(f"unknown reconstruction attacker {', '.join(unknown)}; valid: {', '.join(RECON_ATTACKERS)}")
    run(a.run, names, split_specs(a.methods) if a.methods else None,
        [float(x) for x in a.eps.split(",")] if a.eps else None,
        [int(x) for x in a.seeds.split(",")] if a.seeds else None,
        log=(lambda m: None) if a.quiet else print, argv=sys.argv if argv is None else ["bench.cli.recon", *argv])
    print(f"results: {a.run}/metrics.csv, {a.run}/summary.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
