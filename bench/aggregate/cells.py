"""Per-cell aggregates from the per-image records of the store, through the metric groups of the
run (:mod:`bench.metrics.registry`). Deterministic: rows are read in image-id order and every
bootstrap is seeded by the cell, so a resumed run aggregates exactly what an uninterrupted one
would.

The gallery, the FID reference and the probes are exactly this run's images of the data set
(its split and ``--limit``), never other runs' originals that share the store's data set name.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bench.attackers import TrainingSet
from bench.attackers.data import aligned, gallery_release, released_features
from bench.attackers.registry import IGNORANT
from bench.measure.verify import lfw_pair_embeddings
from bench.metrics.intervals import cell_seed
from bench.metrics.registry import STRONGEST, Row
from bench.metrics.reid_scores import fit_threshold, impostor_scores
from bench.store.results import eps_key, store_dataset
from kpdp.datasets import LFW, LFWSample


def gallery(store, dataset: str, image_ids=None) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    """Image ids, identities and one (N, D) float64 array per feature of the originals of
    ``image_ids`` (all of the data set's when None). Records are parsed one at a time: holding
    them as parsed JSON cost ~140 KB per image."""
    wanted = None if image_ids is None else set(image_ids)
    ids, idents, feats = [], [], {}
    for image_id, identity, record in store.original_records(dataset):  # a damaged row raises StoreDamagedError
        if wanted is not None and image_id not in wanted:
            continue
        ids.append(image_id)
        idents.append(identity)
        for k, v in record["features"].items():
            feats.setdefault(k, []).append(np.asarray(v, np.float64))
    return ids, np.array(idents), {k: np.stack(v) for k, v in feats.items()}


def lfw_pair_scores(ds, recognizer: str, device: str = "cpu", embeddings=None) -> tuple[np.ndarray, int]:
    """Similarity of LFW View 2's impostor pairs (``pairs.txt``), each image embedded exactly as
    the run's probes and gallery are. Returns (scores, number of pairs dropped because an image had
    no face). ``embeddings``: the result of :func:`lfw_pair_embeddings`, computed here if None."""
    impostors, emb = embeddings or lfw_pair_embeddings(ds, (recognizer,), device)
    unit = {p: e[recognizer] / np.linalg.norm(e[recognizer]) for p, e in emb.items() if recognizer in e}
    kept = [(a, c) for a, c in impostors if a in unit and c in unit]
    scores = np.array([float(unit[a] @ unit[c]) for a, c in kept])
    return scores, len(impostors) - len(kept)


def verification_threshold(ds, recognizer: str, gallery_emb, gallery_ids, device: str = "cpu", embeddings=None):
    """Threshold at FAR = 1e-3, fitted on originals only: LFW's own calibration set (the impostor
    pairs of View 2 ``pairs.txt``) when the data set is LFW with its protocol files, otherwise every
    impostor pair of the evaluated originals. Returns (threshold, source)."""

    if isinstance(ds, LFW) and not isinstance(ds, LFWSample) and (ds.root / "pairs.txt").is_file():
        scores, dropped = lfw_pair_scores(ds, recognizer, device, embeddings)
        return fit_threshold(scores), f"lfw pairs.txt impostor pairs ({len(scores)} pairs, {dropped} without a face)"
    return fit_threshold(impostor_scores(gallery_emb, gallery_ids)), "impostor pairs of the evaluated originals"


@dataclass
class CellData:
    """What a metric group aggregates: one cell's probes and this run's gallery of originals."""

    dataset: str
    method: str
    eps: float | None
    seed: int
    gallery_ids: list[str]
    gallery_identities: np.ndarray
    gallery_feats: dict[str, np.ndarray]
    probes: list[tuple]  # (image_id, record, features) of the images the method processed
    probe_index: np.ndarray  # each probe's own original in the gallery
    recognizers: list[str]
    detectors: list[str]
    n_failed: int
    n_skipped: int
    backends: object = None
    ds: object = None
    store: object = None
    device: str = "cpu"
    workers: int = 1
    shared: dict = field(default_factory=dict)  # memo across the cells of one data set
    seeds: list = field(default_factory=lambda: [0])  # the run's seeds (another seed's outputs: a gallery)
    attackers: list = field(default_factory=lambda: [IGNORANT])

    @property
    def probe_identities(self) -> np.ndarray:
        return self.gallery_identities[self.probe_index]

    @property
    def boot_seed(self) -> int:
        return cell_seed(self.dataset, self.method, eps_key(self.eps), self.seed)

    def probe_records(self) -> list[dict]:
        return [r[1] for r in self.probes]

    def probe_features(self, key: str) -> np.ndarray:
        return np.stack([np.asarray(r[2][key], np.float64) for r in self.probes])

    def memo(self, kind: str, key: str, compute):
        k = (kind, key)
        if k not in self.shared:
            self.shared[k] = compute()
        return self.shared[k]

    def anonymised_gallery(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """The gallery of an attacker who runs the method: every gallery image's second release
        (:func:`bench.attackers.data.gallery_release`), aligned with :attr:`gallery_ids`; zero rows
        and ``present = False`` where the method failed."""

        role, seed = gallery_release(self.method, self.seed, self.seeds)
        return aligned(self._released(role, seed), self.gallery_ids, key, self.gallery_feats[key].shape[1])

    def training_set(self, key: str):
        """The method's outputs on the attacker's identity-disjoint training images (a
        :class:`bench.attackers.TrainingSet`), or None when the data set has no training split."""

        # trained once per method and ε, on the run's first seed (bench.run.evaluate.attacker_training)
        rows = [(ident, f[key]) for ident, f in self._released("train", self.seeds[0]).values() if key in f]
        if not rows:
            return None
        source = (self.store.meta().get(f"attacker_training:{self.dataset}") or {}).get("source", "")
        return TrainingSet(np.stack([r[1] for r in rows]), np.array([r[0] for r in rows]), source)

    def _released(self, role: str, seed: int) -> dict:
        """The recognizers' embeddings of one stored cell of this method and ε (memoised per data set)."""

        where = (store_dataset(self.dataset, role), self.method, self.eps, seed)
        return self.memo("released", where, lambda: released_features(
            self.store, *where, [f"emb:{r}" for r in self.recognizers]))

    def verification_threshold(self, recognizer: str) -> float:
        def fit():
            emb = None
            if isinstance(self.ds, LFW) and not isinstance(self.ds, LFWSample) and (self.ds.root / "pairs.txt").is_file():
                emb = self.memo("lfw_pairs", "all", lambda: lfw_pair_embeddings(self.ds, self.recognizers, self.device,
                                                                                 self.workers))
            thr, source = verification_threshold(self.ds, recognizer, self.gallery_feats[f"emb:{recognizer}"],
                                                 self.gallery_identities, self.device, emb)
            if self.store is not None:
                self.store.set_meta(**{f"threshold:{self.dataset}:{recognizer}": {"value": thr, "source": source}})
            return thr
        return self.memo("threshold", recognizer, fit)


def _shared_gallery(store, dataset: str, image_ids, shared: dict | None):
    """:func:`gallery`, parsed once per data set when ``shared`` is given (every cell of a run has the
    same gallery; parsing its JSON records was ~7 % of a cell's aggregation). Read-only, so that no
    cell can change what the next one reads."""
    if shared is None:
        return gallery(store, dataset, image_ids)
    key = ("gallery", dataset, None if image_ids is None else tuple(image_ids))
    if key not in shared:
        ids, idents, feats = gallery(store, dataset, image_ids)
        for a in (idents, *feats.values()):
            a.setflags(write=False)
        shared[key] = (ids, idents, feats)
    ids, idents, feats = shared[key]
    return list(ids), idents, dict(feats)


def load_cell(store, c, cfg, backends, ds, image_ids, shared: dict | None = None) -> CellData:
    g_ids, g_idents, g_feats = _shared_gallery(store, c.dataset, image_ids, shared)
    index = {i: k for k, i in enumerate(g_ids)}
    images = [r for r in store.images(c.dataset, c.method, c.eps, c.seed) if r[0] in index]
    ok = [(r[0], r[3], r[4]) for r in images if r[1] == "ok"]
    wanted = set(image_ids) if image_ids is not None else None
    n_skipped = sum(1 for s in store.skipped(c.dataset) if wanted is None or s[1] in wanted)
    return CellData(c.dataset, c.method, c.eps, c.seed, g_ids, g_idents, g_feats, ok,
                    np.array([index[r[0]] for r in ok], int), list(cfg.recognizers), list(cfg.detectors),
                    len(images) - len(ok), n_skipped, backends, ds, store, cfg.device,
                    getattr(cfg, "workers", 1), shared if shared is not None else {},
                    list(getattr(cfg, "seeds", [c.seed])), list(getattr(cfg, "attackers", None) or [IGNORANT]))


def replaced_attackers(store, c, rows) -> list[str]:
    """The attackers whose stored rows of cell ``c`` the new ``rows`` will not hold (e.g.
    ``semi-finetune`` of a `bench attack` run, when a later `bench run` re-aggregates the cell
    without it). Their rows cannot be kept: the strongest attack is recomputed from per-probe
    hits, and the grid's aggregation does not read the outcomes the passes keep for one another
    (:func:`bench.run.passes.add_kept_outcomes`): run the pass again."""
    old = store.stored_attackers(c.dataset, c.method, c.eps, c.seed)
    return sorted(old - {getattr(r, "attacker", "") for r in rows} - {"", STRONGEST})


def aggregate_cell(store, c, cfg, backends, ds, shared: dict | None = None, image_ids=None,
                   log=None) -> list[Row]:
    """Every selected group's rows for one cell, written to the store. ``shared`` memoises what is
    the same for every cell of a data set (verification thresholds, τ)."""
    rows = cell_rows(store, c, cfg, backends, ds, shared, image_ids)
    write_cell_rows(store, c, cfg, backends, rows, log)
    return rows


def cell_rows(store, c, cfg, backends, ds, shared: dict | None = None, image_ids=None) -> list[Row]:
    """Every selected group's rows for one cell, computed from the store and written nowhere (a
    pool's worker computes them, the driver writes them: :mod:`bench.aggregate.pool`)."""
    cell = load_cell(store, c, cfg, backends, ds, image_ids, shared)
    rows: list[Row] = []
    for g in backends.groups:
        rows += g.aggregate(cell)
    return rows


def write_cell_rows(store, c, cfg, backends, rows: list[Row], log=None) -> None:
    """Store one cell's rows. A stored attacker that this run does not compute is named in a
    warning through ``log``, with the command that restores it."""
    lost = replaced_attackers(store, c, rows) if any(g.name == "reid" for g in backends.groups) else []
    store.put_aggregates(c.dataset, c.method, c.eps, c.seed, rows)
    if lost and log is not None:
        eps = "" if c.eps is None else f" --eps {c.eps:g}"
        attackers = list(getattr(cfg, "attackers", None) or [IGNORANT])
        log(f"warning: {c.dataset} {c.method}{eps} seed={c.seed}: the rows of attacker {', '.join(lost)} were "
            f"replaced by this run's attackers ({', '.join(attackers)}); to restore them run "
            f"`python -m bench attack {lost[0]} --run {store.dir} --methods {c.method}{eps}`")
