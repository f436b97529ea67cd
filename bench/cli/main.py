"""``python -m bench``: a thin shell over the Python API (:func:`bench.run.evaluate` and friends)."""
from __future__ import annotations

import argparse
import os
import sys

EXIT_CODES = """exit codes: 0 done; 2 bad arguments (nothing written); 3 a backend's weights are missing;
4 the run failed (no image measured, or most failed for one reason not about the images);
5 a storage fault (full disk, damaged result store, I/O error; the message names the file);
130 / 143 interrupted (SIGINT / SIGTERM). After 4, 5, 130, 143 the same command resumes."""


def cmd_lfw_verify(a) -> int:
    from bench.measure.verify import lfw_verify

    r = lfw_verify(a.root, a.recognizer, a.device, progress=not a.quiet, workers=a.workers)
    print(f"recognizer={r['recognizer']} images={r['n_images']} fallback_boxes={r['n_fallback_boxes']}")
    print("folds=" + ",".join(f"{x:.4f}" for x in r["folds"]))
    print(f"accuracy={r['accuracy']:.4f} std={r['std']:.4f}")
    return 0


def cmd_landmark_privacy(a) -> int:
    import numpy as np

    from bench.measure.landmark_privacy import ATTACKER, chance_level, landmark_identification, majority_level
    from kpdp import landmark_cache as lc
    from kpdp.datasets import get_dataset
    from kpdp.mechanism import noise_to_spread
    from kpdp.space import IdentitySpace

    if a.landmarks:
        lms = lc.merge([lc.load(p) for p in a.landmarks])
    else:
        lms = lc.extract_landmarks(get_dataset(a.dataset, a.root, a.split), progress=not a.quiet)
    space = IdentitySpace.load()
    eps_list = [float(e) for e in a.eps.split(",")]
    ids = lms["identity"]
    source = ", ".join(a.landmarks) if a.landmarks else f"{a.dataset}/{a.split}"
    print(f"identification from the released geometry: {len(ids)} images of {source}, "
          f"seed {a.seed}, post-processing '{a.postprocess}'")
    print(f"attacker: {ATTACKER}")
    print(f"chance (uniform guess among the others) {chance_level(ids):.4f}; "
          f"always naming the largest identity {majority_level(ids):.4f}")
    spread = ", ".join(f"ε {e:g}: {np.median(noise_to_spread(space, e)):.2f}" for e in eps_list)
    print(f"noise on each identity coordinate, std over the training photos' spread (median of 16): {spread}")
    print("eps       residual    part       rank1   95% interval      probes")
    for residual in a.residual.split(","):
        for r in landmark_identification(lms["landmarks"], ids, eps_list, a.seed, space, a.postprocess, residual):
            if r["n"] == 0:
                print(f"{r['eps']:<9g} {residual:<11} {r['part']:<10} nothing released")
                continue
            print(f"{r['eps']:<9g} {residual:<11} {r['part']:<10} {r['rank1']:.4f}  "
                  f"[{r['lo']:.4f}, {r['hi']:.4f}]  {r['n']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description="kpdp-bench: benchmark face anonymisation",
                                epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("lfw-verify", help="LFW View 2 10-fold verification of a recognizer on originals")
    s.add_argument("--recognizer", required=True), s.add_argument("--root", required=True)
    s.add_argument("--device", default="cpu"), s.add_argument("--quiet", action="store_true")
    s.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes that embed the images (default: one per core)")
    s.set_defaults(func=cmd_lfw_verify)
    s = sub.add_parser("landmark-privacy", help="rank-1 identification from KPDP's released geometry (identity "
                       "coordinates, kept residual, pose, all of it) vs eps")
    s.add_argument("--dataset", default="lfw"), s.add_argument("--root"), s.add_argument("--split", default="devtest")
    s.add_argument("--landmarks", nargs="+", help="landmark caches (python -m kpdp landmarks) instead of extracting")
    s.add_argument("--eps", default="0.5,1,4,16,64,inf"), s.add_argument("--seed", type=int, default=0)
    s.add_argument("--postprocess", default="sample", choices=("sample", "mean", "clamp"))
    s.add_argument("--residual", default="full,expression",
                   help="comma-separated residual modes to compare (full, expression, none)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_landmark_privacy)
    from bench.cli import run as cli_run

    cli_run.add_commands(sub)
    from bench.cli import cache as cli_cache

    cli_cache.add_commands(sub)
    from bench.cli import compare as cli_compare

    cli_compare.add_commands(sub)
    return p


def main(argv=None) -> int:
    from bench.run.executor import Interrupted, RunFailed
    from bench.store.cache import StorageError
    from kpdp.faces import BackendUnavailable

    p = build_parser()
    a = p.parse_args(argv)
    try:
        return a.func(a)
    except BackendUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except RunFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 5
    except Interrupted as exc:
        print("interrupted", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, KeyError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
