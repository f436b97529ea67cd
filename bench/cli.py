"""``python -m bench``: a thin shell over the Python API (:func:`bench.evaluate` and friends)."""
from __future__ import annotations

import argparse
import sys


def cmd_lfw_verify(a) -> int:
    from .verify import lfw_verify

    r = lfw_verify(a.root, a.recognizer, a.device, progress=not a.quiet)
    print(f"recognizer={r['recognizer']} images={r['n_images']} fallback_boxes={r['n_fallback_boxes']}")
    print("folds=" + ",".join(f"{x:.4f}" for x in r["folds"]))
    print(f"accuracy={r['accuracy']:.4f} std={r['std']:.4f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description="kpdp-bench: benchmark face anonymisation")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("lfw-verify", help="LFW View 2 10-fold verification of a recognizer on originals")
    s.add_argument("--recognizer", required=True), s.add_argument("--root", required=True)
    s.add_argument("--device", default="cpu"), s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_lfw_verify)
    from . import cli_run

    cli_run.add_commands(sub)
    return p


def main(argv=None) -> int:
    from kpdp.faces import BackendUnavailable

    p = build_parser()
    a = p.parse_args(argv)
    try:
        return a.func(a)
    except BackendUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (ValueError, KeyError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
