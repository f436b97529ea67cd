"""``python -m bench.cli.attribute_probes``: fit the attribute probes on CelebA's probe splits
(:func:`bench.metrics.attribute_probes.train`), or only extract and cache their features. A module
of its own under ``cli``: ``bench`` imports :mod:`bench.metrics.attribute_probes` when it starts, and
Python warns when a module it has imported is run as ``__main__``. (The committed probes were made
by the same code under its old name, ``python -m bench.metrics.attribute_probes``.)"""
from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from bench.metrics import attribute_probes as probes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cli.attribute_probes",
                                description=probes.__doc__.split("\n\n")[0])
    p.add_argument("--celeba", required=True, help="CelebA folder (img_align_celeba/, identity_CelebA.txt, "
                                                    "list_attr_celeba.txt)")
    p.add_argument("--out", default=str(probes.DEFAULT_OUT), help="output path without suffix (.safetensors + .json)")
    p.add_argument("--work", default=str(probes.WORK), help="feature cache folder")
    p.add_argument("--seed", type=int, default=probes.SEED)
    p.add_argument("--limit", type=int, default=None, help="read only the first N image files (name order)")
    p.add_argument("--extract-only", action="store_true", help="only compute and cache the features")
    p.add_argument("--threads", type=int, default=1, help="torch threads (extraction is the slow step)")
    a = p.parse_args(argv)
    if not Path(a.celeba).is_dir():
        p.error(f"--celeba {a.celeba}: no such folder")
    import torch

    torch.set_num_threads(a.threads)
    log = functools.partial(print, flush=True)
    if a.extract_only:
        files, feats, failed = probes.celeba_features(a.celeba, a.work, a.limit, log=log)
        log(f"{len(files)} images with features, {len(failed)} without a face")
        return 0
    command = "python -m bench.cli.attribute_probes " + " ".join(argv if argv is not None else sys.argv[1:])
    prov = probes.train(Path(a.celeba), Path(a.out), Path(a.work), a.seed, command, a.limit, log)
    log(f"used ({len(prov['used'])}): {', '.join(prov['used'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
