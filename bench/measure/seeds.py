"""One definition of the per-image seed, and the one call that anonymises an image with it: the
run's executors, the attackers' image regeneration and the reports' sample grids all go through
:func:`anonymise`, so a regenerated image is the measured one (its digest is checked where stored)."""
from __future__ import annotations

import hashlib

from bench.methods import base_name
from bench.store.results import eps_key


def derive_seed(seed: int, dataset: str, method: str, eps, image_id: str) -> int:
    """Per-image seed: independent of order, so a resumed run draws exactly the same noise. Variants
    of one method (``kpdp[postprocess=mean]``) share the base name's seeds: their comparison is
    paired (same noise, same image), which is what tells a variant's effect from the noise's."""
    method = base_name(method)
    h = hashlib.sha256(f"{seed}|{dataset}|{method}|{eps_key(eps)}|{image_id}".encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


def anonymise(method, image, faces, run_seed: int, dataset: str, spec: str, eps, image_id: str):
    """``method``'s result on ``image`` (its ``faces``) exactly as a run with seed ``run_seed`` made
    it for the cell (``dataset``, ``spec``, ``eps``): the same per-image seed, whatever the order."""
    return method.anonymize(image, faces, seed=derive_seed(run_seed, dataset, spec, eps, image_id))
