"""Whether a cell's stored aggregates still hold: a digest of everything they were computed from.

``bench run`` aggregates the cells of its grid at the end. A cell whose inputs are unchanged since
its last aggregation keeps its stored rows instead: the same code (a clean git commit), metric and
backend versions, settings that aggregation reads (metrics, recognizers, detectors, attackers and
their sanity verdicts, seeds), the run's image list (the gallery and FID reference), and the
per-image records of the cell, of its second release and training images, and of the originals,
byte for byte (so a record damaged since is read again, and the store's salvage sees it).

Why: a run that adds a method to a store otherwise recomputes every earlier cell (minutes each on
a large grid), and the recomputed rows lose the attackers that another command added, such as
``bench attack semi-finetune``, whose rows only that attacker's own run can compute.

Caveat: code that no commit names (a dirty checkout, or no git) gives no fingerprint, so such a
run aggregates everything, as does ``bench run --reaggregate``.
"""
from __future__ import annotations

import hashlib
import json

from bench.store.results import eps_key

META_PREFIX = "aggregated_from:"


def meta_key(dataset: str, method: str, eps, seed: int) -> str:
    return f"{META_PREFIX}{dataset}/{method}@{eps_key(eps)}/{seed}"


def data_set_digest(store, store_datasets: list[str], code_version: str | None) -> str | None:
    """The inputs every cell of a data set shares, digested once per run: the code, the originals'
    analysis and the ``original`` method's records, the skipped images. None when the code is not a
    clean commit (then no cell has a fingerprint).

    ``store_datasets``: the names the data set's images are stored under (probes, second releases,
    attackers' training images).
    """
    if not code_version or code_version.endswith("+dirty"):
        return None
    h = hashlib.sha256(code_version.encode())
    for dataset in store_datasets:
        _feed_images(h, store, dataset, "original", None)
        for row in store.originals_as_stored(dataset):
            h.update(repr(row).encode())
        for row in store.skip_reasons_as_stored(dataset):
            h.update(repr(row).encode())
    return h.hexdigest()


def _feed_images(h, store, dataset: str, method: str, eps) -> None:
    for seed, image_id, status, record, features in store.images_as_stored(dataset, method, eps):
        h.update(repr((seed, image_id, status, record)).encode())
        h.update(features or b"")


def cell_fingerprint(store, cell, cfg, store_datasets: list[str], image_ids: list[str],
                     invalid_attackers: dict, data_set: str | None) -> str | None:
    """The digest of a cell's aggregation inputs, or None when ``data_set`` (its
    :func:`data_set_digest`) is None."""
    if data_set is None:
        return None
    meta = store.meta()
    h = hashlib.sha256(data_set.encode())
    settings = {
        "metric_versions": meta.get("metric_versions"), "backends": meta.get("backends"),
        "method": (meta.get("methods") or {}).get(f"{cell.method}@{eps_key(cell.eps)}"),
        "metrics": sorted(cfg.metrics), "recognizers": list(cfg.recognizers), "detectors": list(cfg.detectors),
        "attackers": sorted(cfg.attackers), "attacker_train_images": cfg.attacker_train_images,
        "sanity_min_rank1": cfg.sanity_min_rank1, "seeds": list(cfg.seeds), "invalid_attackers": invalid_attackers,
    }
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    h.update("\n".join(image_ids).encode())
    for dataset in store_datasets:
        _feed_images(h, store, dataset, cell.method, cell.eps)
    return h.hexdigest()


def stored_rows_if_unchanged(store, cell, fingerprint: str | None) -> list | None:
    """The cell's stored rows when they were aggregated from exactly ``fingerprint``; else None."""

    if fingerprint is None or not store.cell_finished(cell.dataset, cell.method, cell.eps, cell.seed):
        return None
    if store.meta().get(meta_key(cell.dataset, cell.method, cell.eps, cell.seed)) != fingerprint:
        return None
    return store.cell_aggregates(cell.dataset, cell.method, cell.eps, cell.seed) or None


def record(store, cell, fingerprint: str | None) -> None:
    """Remember what the cell's rows were aggregated from (None: forget, so the next run recomputes)."""
    store.set_meta(**{meta_key(cell.dataset, cell.method, cell.eps, cell.seed): fingerprint})
