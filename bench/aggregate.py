"""Per-cell aggregates from the per-image records of the store (deterministic: rows are read in
image-id order, so a resumed run aggregates exactly what an uninterrupted one would)."""
from __future__ import annotations

import json
import math

import numpy as np

from .metrics.fid import BACKEND as FID_BACKEND, frechet_distance, kernel_inception_distance
from .metrics.reid import fit_threshold, impostor_scores, intrusion_rate, reid_rank1, tar_at_far

PRIVACY = ("reid_rank1", "reid_rank1_same", "reid_tar_far1e-3", "intrusion_rate")


def gallery(store, dataset: str) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    """Image ids, identities and one (N, D) float64 array per feature of the originals. Records are
    parsed one at a time: holding them as parsed JSON cost ~140 KB per image."""
    ids, idents, feats = [], [], {}
    for image_id, identity, record in store.db.execute(
            "SELECT image_id, identity, record FROM originals WHERE dataset=? ORDER BY image_id", (dataset,)):
        ids.append(image_id)
        idents.append(identity)
        for k, v in json.loads(record)["features"].items():
            feats.setdefault(k, []).append(np.asarray(v, np.float64))
    return ids, np.array(idents), {k: np.stack(v) for k, v in feats.items()}


def verification_threshold(ds, recognizer: str, gallery_emb, gallery_ids, device: str = "cpu"):
    """Threshold at FAR = 1e-3, fitted on originals only: LFW's own calibration set (the impostor
    pairs of View 2 ``pairs.txt``) when the data set is LFW with its protocol files, otherwise every
    impostor pair of the evaluated originals. Returns (threshold, source)."""
    from kpdp.datasets import LFW, LFWSample

    if isinstance(ds, LFW) and not isinstance(ds, LFWSample) and (ds.root / "pairs.txt").is_file():
        from .verify import embed_paths

        impostors = [(a, b) for _, a, b, same in LFW(ds.root, "all").pairs() if not same]
        paths = sorted({p for pair in impostors for p in pair})
        emb, _ = embed_paths(paths, recognizer, device, progress=False)
        index = {p: i for i, p in enumerate(paths)}
        scores = np.einsum("ij,ij->i", emb[[index[a] for a, _ in impostors]], emb[[index[b] for _, b in impostors]])
        return fit_threshold(scores), "lfw pairs.txt impostor pairs"
    return fit_threshold(impostor_scores(gallery_emb, gallery_ids)), "impostor pairs of the evaluated originals"


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return (float(np.mean(xs)) if xs else float("nan")), len(xs)


def aggregate_cell(store, c, cfg, backends, ds, thresholds: dict | None = None) -> list[tuple[str, str, float, int]]:
    """``thresholds`` memoises the verification threshold per recognizer across a data set's cells."""
    thresholds = {} if thresholds is None else thresholds
    g_ids, g_idents, g_feats = gallery(store, c.dataset)
    index = {i: k for k, i in enumerate(g_ids)}
    images = [r for r in store.images(c.dataset, c.method, c.eps, c.seed) if r[0] in index]
    ok = [r for r in images if r[1] == "ok"]
    failed = len(images) - len(ok)
    n_skipped = len(store.skipped(c.dataset))
    rows: list[tuple[str, str, float, int]] = []
    if ok and "reid" in cfg.metrics:
        probe_idx = np.array([index[r[0]] for r in ok])
        probe_ids = g_idents[probe_idx]
        per_metric: dict[str, list[tuple[float, int]]] = {m: [] for m in PRIVACY}
        for rec in cfg.recognizers:
            G = g_feats[f"emb:{rec}"]
            P = np.stack([r[4][f"emb:{rec}"] for r in ok])
            if rec not in thresholds:
                thr, source = verification_threshold(ds, rec, G, g_idents, cfg.device)
                thresholds[rec] = thr
                store.set_meta(**{f"threshold:{c.dataset}:{rec}": {"value": thr, "source": source}})
            thr = thresholds[rec]
            args = (P, probe_ids, probe_idx, G, g_idents)
            results = {"reid_rank1": reid_rank1(*args), "reid_rank1_same": reid_rank1(*args, same_image=True),
                       "reid_tar_far1e-3": tar_at_far(*args, thr), "intrusion_rate": intrusion_rate(*args, thr)}
            for m, r in results.items():
                rows.append((m, rec, r.value, r.n))
                per_metric[m].append((r.value, r.n))
        for m, vals in per_metric.items():  # the strongest attacker
            finite = [v for v in vals if not math.isnan(v[0])]
            if finite:
                rows.append((m, "max", max(v for v, _ in finite), min(n for _, n in finite)))
    if ok and "detection" in cfg.metrics:
        for det in cfg.detectors:
            hits = [r[3]["det_hit"][det] for r in ok]
            rows.append(("detection_rate", det, float(np.mean(hits)), len(hits)))
    if ok and "fid" in cfg.metrics and len(ok) >= 2:
        real = g_feats["incep"]
        fake = np.stack([r[4]["incep"] for r in ok]).astype(np.float64)
        rows.append(("fid", FID_BACKEND, frechet_distance(real, fake), len(fake)))
        rows.append(("kid", FID_BACKEND, kernel_inception_distance(real, fake), len(fake)))
    if ok and "landmarks" in cfg.metrics:
        lm_name = backends.landmarker
        v, n = _mean([r[3]["nme"] for r in ok if not r[3]["lm_fail"]])
        rows.append(("landmark_nme", lm_name, v, n))
        rows.append(("landmark_fail_rate", lm_name, float(np.mean([r[3]["lm_fail"] for r in ok])), len(ok)))
        targets = [r[3]["nme_target"] for r in ok if "nme_target" in r[3]]
        if targets:
            v, n = _mean(targets)
            rows.append(("landmark_nme_target", lm_name, v, n))
    if ok and "background" in cfg.metrics:
        for m in ("bg_psnr", "bg_ssim"):
            v, n = _mean([r[3][m] for r in ok])
            rows.append((m, "", v, n))
    if ok:
        v, n = _mean([r[3]["sec"] for r in ok])
        rows.append(("sec_per_image", "", v, n))
    rows.append(("skipped", "", float(n_skipped + failed), n_skipped + failed))
    store.put_aggregates(c.dataset, c.method, c.eps, c.seed, rows)
    return rows
