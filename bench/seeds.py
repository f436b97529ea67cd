"""One definition of the per-image seed, shared by the harness, its executors and the reports."""
from __future__ import annotations

import hashlib

from .registry import base_name
from .store import eps_key


def derive_seed(seed: int, dataset: str, method: str, eps, image_id: str) -> int:
    """Per-image seed: independent of order, so a resumed run draws exactly the same noise. Variants
    of one method (``kpdp[postprocess=mean]``) share the base name's seeds: their comparison is
    paired (same noise, same image), which is what tells a variant's effect from the noise's."""
    method = base_name(method)
    h = hashlib.sha256(f"{seed}|{dataset}|{method}|{eps_key(eps)}|{image_id}".encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1
