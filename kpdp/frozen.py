"""Frozen statistics shipped with KPDP (the identity space, the residual basis) as safetensors files:
float64 arrays, with a format version and a SHA-256 of the arrays in the metadata, both checked
when the file is read. Nothing is unpickled; an edited or truncated file is refused, not used."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of the arrays as contiguous float64, in the dict's order."""
    h = hashlib.sha256()
    for a in arrays.values():
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return h.hexdigest()


def save(path: Path | str, arrays: dict[str, np.ndarray], meta: dict, version: str) -> str:
    """Write ``arrays`` (as float64) with ``meta``, the format version and their digest; returns the digest."""
    from safetensors.numpy import save_file

    meta = {**meta, "format_version": version, "sha256_arrays": arrays_digest(arrays)}
    save_file({k: np.ascontiguousarray(a, dtype=np.float64) for k, a in arrays.items()}, str(path),
              metadata={k: str(v) for k, v in meta.items()})
    return meta["sha256_arrays"]


def load(path: Path, names, version: str, missing: str) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays ``names`` and the metadata of a file written by :func:`save`. ``FileNotFoundError``
    with the message ``missing`` when there is no file; ``ValueError`` on another format version or
    when the arrays do not match their recorded digest."""
    from safetensors import safe_open

    if not Path(path).is_file():
        raise FileNotFoundError(missing)
    with safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata() or {})
        arrays = {k: f.get_tensor(k) for k in names}
    if meta.get("format_version") != version:
        raise ValueError(f"{path}: format version {meta.get('format_version')}, expected {version}")
    if arrays_digest(arrays) != meta.get("sha256_arrays"):
        raise ValueError(f"{path}: arrays do not match the recorded hash (corrupt or edited file)")
    return arrays, meta
