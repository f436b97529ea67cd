"""Running the reconstruction attackers (``recon-wiener``, ``recon-learned``) on a finished run:
make the anonymised images again from the run's seeds (:func:`bench.measure.seeds.anonymise`, checked
against the stored digests, as for ``semi-finetune``), reconstruct the face, embed the
reconstruction with each of the run's recognizers at the original's face location, score it
against the originals' gallery with the outcome code of every attacker, run the sanity check, and
append the rows and the recomputed strongest attack (``attacker = max``) to the run's store.

The store keeps embeddings, not pixels, hence a pass after the grid. It is resumable: the
embedding of each reconstruction is cached per (attacker, model, recognizer, anonymised image
digest) in the feature cache and each learned model on disk, so a killed or repeated call neither
trains nor embeds again (nor anonymises, once every embedding is cached). The command is
``python -m bench.cli.recon --run RUN_DIR``; ``bench run --attackers ...,recon-wiener,recon-learned``
runs it after the grid.

The strongest attack is recomputed from the per-probe outcomes of the run's other attackers (which
the store can recompute) and these. The per-probe outcomes of another attacker that needs pixels
(``semi-finetune``) are not in the store: where the run holds its rows they are kept, but left out
of the maximum recomputed here, and a warning says so.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bench import methods as method_registry
from bench.aggregate.cells import load_cell
from bench.attackers import recon_learned as rl
from bench.attackers import recon_wiener as rw
from bench.attackers import sanity
from bench.attackers.data import training_samples, training_split
from bench.attackers.outcomes import _attack_once, attack
from bench.attackers.registry import IGNORANT, Attacker, available, get_attacker
from bench.attackers.reid_group import attack_rows
from bench.attackers.semi_linear import identity_folds
from bench.measure.analysis import face_from_json
from bench.metrics.registry import STRONGEST
from bench.metrics.reid_scores import REID_METRICS, REID_RANK1, REID_TAR_FAR, intrusion_threshold
from bench.run.evaluate import Cell
from bench.run.finetune_data import Regenerator, Release, ensure_releases, originals, stored_digests
from bench.run.passes import (add_kept_outcomes, aggregation_config, cells_to_attack, check_sanity, keep_outcomes,
                              run_calibration, run_cells, run_recognizers, run_samples)
from bench.store.cache import FeatureCache
from bench.store.results import ResultStore, eps_key, store_dataset
from kpdp.datasets import get_dataset, load_image
from kpdp.faces import get_recognizer

RECON_ATTACKERS = (rw.NAME, rl.NAME)


# --- images ---------------------------------------------------------------------------------------

def primary_face(record: dict):
    return face_from_json(record["faces"][record.get("primary", 0)])


# --- the attackers on one cell ---------------------------------------------------------------------

class ReconCell:
    """The reconstruction attackers' probe embeddings for one cell of a run (a
    :class:`bench.aggregate.cells.CellData`), cached; ``train_release``: the run's training images
    of the method (None: two identity folds of the probes)."""

    def __init__(self, cell, regen, recognizers: dict, run_seed: int, train_release, log=print):
        self.cell, self.regen, self.recs, self.seed, self.log = cell, regen, recognizers, run_seed, log
        self.train_release = train_release
        self.cache = FeatureCache()
        self.timing = {"regenerate": 0.0, "reconstruct": 0.0, "embed": 0.0, "train": 0.0}
        self._images: dict = {}

    def probe_release(self) -> Release:
        c = self.cell
        return Release(c.dataset, c.dataset, c.method, c.eps, c.seed)

    def images(self, release, image_ids) -> dict:
        """Images made again, memoised per release (both attackers and the training share them)."""
        memo = self._images.setdefault(release.label(), {})
        todo = [i for i in image_ids if i not in memo]
        if todo:
            t0 = time.perf_counter()
            memo.update(self.regen.images(release, todo))
            self.timing["regenerate"] += time.perf_counter() - t0
        return {i: memo[i] for i in image_ids if i in memo}

    def embeddings(self, attacker: str, model_id: str, reconstruct) -> tuple[dict, dict]:
        """({recognizer: (probes, D) embeddings of the reconstructions}, info); ``reconstruct(image
        id, image, record)`` gives the reconstruction (uint8)."""
        c = self.cell
        rel = self.probe_release()
        digests = stored_digests(c.store, rel)
        probe_ids = [p[0] for p in c.probes]
        version = get_attacker(attacker).version

        def key(rec, image_id):
            d = digests.get(image_id)
            what = f"v{version}|{model_id}|{rec}={self.recs[rec].version}|{rel.origin}|{image_id}"
            return FeatureCache.key(attacker, what, d) if d else None

        out = {rec: [None] * len(probe_ids) for rec in self.recs}
        missing = []
        for k, image_id in enumerate(probe_ids):
            for rec in self.recs:
                ck = key(rec, image_id)
                v = self.cache.get_array(ck) if ck else None
                if v is None:
                    missing.append(k)
                    break
                out[rec][k] = v
        not_remade = 0
        if missing:
            imgs = self.images(rel, [probe_ids[k] for k in missing])
            with _one_thread():
                for k in missing:
                    got = imgs.get(probe_ids[k])
                    recon = None
                    if got is not None:
                        t0 = time.perf_counter()
                        recon = reconstruct(probe_ids[k], got[0], got[1])
                        self.timing["reconstruct"] += time.perf_counter() - t0
                    not_remade += recon is None
                    for rec, r in self.recs.items():
                        if recon is None:  # not remade (its original is gone): the image the attacker has
                            out[rec][k] = np.asarray(c.probes[k][2][f"emb:{rec}"], np.float64)
                            continue
                        t0 = time.perf_counter()
                        out[rec][k] = np.asarray(r.embed(recon, face_from_json(got[1]["rec_face"][rec])), np.float64)
                        self.timing["embed"] += time.perf_counter() - t0
                        ck = key(rec, probe_ids[k])
                        if ck and got[2]:  # only what is exactly the run's image is cached
                            self.cache.put_array(ck, out[rec][k])
        info = {"applies": True, "probes": len(probe_ids), "embeddings_cached": len(probe_ids) - len(missing),
                "not_remade": not_remade}
        return {rec: np.stack(v) for rec, v in out.items()}, info

    def as_stored(self, why: str) -> tuple[dict, dict]:
        """The probes' stored embeddings: the reconstruction of an image nothing was done to is the image."""
        c = self.cell
        return ({rec: np.stack([np.asarray(p[2][f"emb:{rec}"], np.float64) for p in c.probes]) for rec in self.recs},
                {"applies": True, "probes": len(c.probes), "identity": why})

    def wiener(self) -> tuple[dict, dict]:
        c = self.cell
        method = self.regen.method(c.method, c.eps)
        if not rw.applies(method):
            return {}, {"applies": False, "note": f"no known operator for {c.method}: not applicable"}
        if not rw.replaces_pixels(method):
            return self.as_stored("the operator is the identity")

        def reconstruct(image_id, image, record):
            return rw.reconstruct(method, image, primary_face(record))

        return self.embeddings(rw.NAME, f"prior={rw.PRIOR_STEP:g}", reconstruct)

    def learned(self) -> tuple[dict, dict]:
        c = self.cell
        probe_ids = [p[0] for p in c.probes]
        if self.train_release is not None:
            model, info = self._model(self.train_release, None, None)
            models, fold_of, infos = {None: model}, {}, [info]
        else:  # no training split: the probes' own images, two identity folds
            folds = identity_folds(np.asarray(c.probe_identities), 2, self.seed)
            fold_of = dict(zip(probe_ids, folds))
            models, infos = {}, []
            for f in (0, 1):
                models[f], info = self._model(self.probe_release(), [i for i, fo in fold_of.items() if fo != f], f)
                infos.append(info)
        model_id = "+".join(i["model"] for i in infos)
        if all(m.is_identity() for m in models.values()):
            emb, info = self.as_stored("learned from a method that changes nothing")
            return emb, {**info, "training": infos if len(infos) > 1 else infos[0]}

        def reconstruct(image_id, image, record):
            model = models[fold_of[image_id]] if fold_of else models[None]  # fitted on the other fold
            return rl.reconstruct(model, image, primary_face(record).landmarks)

        emb, info = self.embeddings(rl.NAME, model_id, reconstruct)
        return emb, {**info, "training": infos if len(infos) > 1 else infos[0]}

    def _model(self, release, image_ids, fold):
        """(model, info) of the learned inverse on ``release``'s ok images (or ``image_ids`` of
        them): loaded when cached, else trained and saved."""
        c = self.cell
        digests = stored_digests(c.store, release)
        ids = sorted(i for i in (digests if image_ids is None else image_ids) if i in digests)
        key = rl.model_key(c.method, eps_key(c.eps), self.seed, [(i, digests[i] or "") for i in ids], fold)
        path = rl.model_path(key)
        model = rl.load_model(path, key)
        if model is None:
            imgs = self.images(release, ids)
            origs = originals(c.store, release.origin, list(imgs))
            got = [i for i in ids if i in imgs and i in origs]
            t0 = time.perf_counter()
            with _one_thread():
                model = rl.train([imgs[i][0] for i in got], [load_image(origs[i][1]) for i in got],
                                 [primary_face(imgs[i][1]).landmarks for i in got], [origs[i][0] for i in got],
                                 self.seed)
            self.timing["train"] += time.perf_counter() - t0
            rl.save_model(path, model, key)
            what = f"{c.method}" + (f" eps={c.eps:g}" if c.eps is not None else "") + \
                (f" fold {fold}" if fold is not None else "")
            self.log(f"{rl.NAME} {what}: trained on {model.info['images']} images in "
                     f"{time.perf_counter() - t0:.1f} s")
        return model, {**model.info, "model": rl.key_id(key)}


# --- outcomes, sanity, rows ------------------------------------------------------------------------

def cell_hits(cell, emb: dict) -> dict:
    """{recognizer: per-probe outcomes} of reconstructions ``emb`` ({recognizer: (probes, D)})
    against the originals, with each recognizer's own calibration (threshold, τ), as ``ignorant``:
    the probes are images, the gallery the originals, the recognizer off the shelf."""
    G_ids, ids, index = cell.gallery_identities, cell.probe_identities, cell.probe_index
    out = {}
    for rec, P in emb.items():
        G0 = cell.gallery_feats[f"emb:{rec}"]
        fixed = (cell.verification_threshold(rec),
                 cell.memo("intrusion_tau", rec, lambda: intrusion_threshold(G0, G_ids)))
        hits = _attack_once(Attacker(), P, ids, index, G0, G_ids, np.ones(len(G_ids), bool), fixed)
        hits[REID_TAR_FAR] = hits[REID_TAR_FAR][np.argsort(hits.pop("_owner"), kind="stable")]
        out[rec] = hits
    return out


def other_attackers(store, dataset: str) -> tuple[list[str], list[str]]:
    """(attackers whose rows the run holds and whose outcomes the store can recompute, in ladder
    order; attackers whose rows it holds that need pixels, less these)."""
    have = store.attackers_with(dataset, REID_RANK1) - {"", STRONGEST, *RECON_ATTACKERS}
    known = available()
    pixels = sorted(a for a in have if a in known and get_attacker(a).pixels)
    order = {a: i for i, a in enumerate(known)}
    return sorted(have - set(pixels), key=lambda a: (order.get(a, len(order)), a)) or [IGNORANT], pixels


def attack_run(run_dir, attackers=RECON_ATTACKERS, methods=None, eps=None, seeds=None, log=print) -> list:
    """Run the reconstruction ``attackers`` on the cells of a finished run (``methods``/``eps``/
    ``seeds``: a selection, None = all) and the sanity check's reference cells (``original``,
    ``blur``), and store their rows and the recomputed strongest attack; returns the rows written.
    The caller rewrites ``metrics.csv`` and ``summary.md`` (:mod:`bench.cli.recon`)."""
    attackers = [a for a in RECON_ATTACKERS if a in attackers]
    run_dir = Path(run_dir)
    if not (run_dir / "results.sqlite").is_file():
        raise FileNotFoundError(f"{run_dir}/results.sqlite: not a run directory (the store is needed, not only "
                                "metrics.csv)")
    store = ResultStore(run_dir)
    try:
        return _attack_store(store, attackers, methods, eps, seeds, log)
    finally:
        store.close()


@contextmanager
def _one_thread():
    """Torch and BLAS on one thread while reconstructing and embedding: the work is one image at a
    time, where extra threads only fight over busy cores (the torch FaceNet took 5 s per face with
    its default threads on two loaded cores, 0.17 s with one). Not while anonymising: a generator
    must run on the threads the run used to give its very pixels (:class:`Regenerator`)."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)


def _attack_store(store, attackers, methods, eps, seeds, log) -> list:
    meta = store.meta()
    run_seeds = list(meta.get("seeds") or [0])
    seeds = [s for s in (seeds or run_seeds) if s in run_seeds] or run_seeds
    run_methods = run_cells(meta)
    wanted = [method_registry.canonical(m) for m in methods] if methods else None
    eps_wanted = {eps_key(e) for e in eps} if eps else None
    regen = Regenerator.for_run(store, meta)
    recognizers = run_recognizers(meta)
    recs = {r: get_recognizer(r, "cpu") for r in recognizers}
    written = []
    for d in meta.get("datasets") or []:
        ds = get_dataset(d["name"], d.get("root"), d.get("split"))
        samples = run_samples(ds, meta)
        image_ids = [s.image_id for s in samples]
        others, pixel_others = other_attackers(store, ds.name)
        run_cfg = aggregation_config(recognizers, run_seeds, others)
        shared = run_calibration(meta, ds.name, recognizers)
        train_ds, _ = training_split(ds)
        train_name = store_dataset(ds.name, "train")
        todo = cells_to_attack(run_methods, run_seeds, seeds, lambda m, e: (wanted is None or m in wanted) and (
            eps_wanted is None or e is None or eps_key(e) in eps_wanted))
        if not todo:
            log(f"note: {ds.name}: no cell of the run matches --methods/--eps/--seeds")
            continue
        if rl.NAME in attackers and train_ds is not None:  # training images the run lacks, made as bench run would
            cells = dict.fromkeys((m, e) for m, e, _ in todo)
            need = [Release(train_name, train_name, m, e, run_seeds[0]) for m, e in cells]
            train_samples = []
            if any(not store.done_images(r.store_dataset, r.method, r.eps, r.seed) for r in need):
                n = (meta.get(f"attacker_training:{ds.name}") or {}).get("n_images") or len(samples)
                train_samples, source = training_samples(ds, n, seed=run_seeds[0])
                store.set_meta(**{f"attacker_training:{ds.name}": {"source": source, "n_images": len(train_samples)}})
            ensure_releases(store, ds, need, {train_name: train_samples}, recognizers, log)

        outcomes, infos, kept_by = {}, {}, {}
        for m, e, s in todo:
            t0 = time.perf_counter()
            cell = load_cell(store, Cell(ds.name, m, e, s), run_cfg, None, ds, image_ids, shared)
            if not cell.probes:
                log(f"note: {ds.name} {m} {eps_key(e)} seed {s}: no probe in the store")
                continue
            out = cell.memo("attack", (m, e, s), lambda: attack(cell, others))
            train_rel = Release(train_name, train_name, m, e, run_seeds[0]) if train_ds is not None else None
            rc = ReconCell(cell, regen, recs, run_seeds[0], train_rel, log)
            info = {}
            for a in attackers:
                emb, info[a] = rc.wiener() if a == rw.NAME else rc.learned()
                for rec, hits in cell_hits(cell, emb).items():
                    out.hits[(a, rec)] = hits
                    out.info[(a, rec)] = info[a]
            keep_outcomes(store, ds.name, m, e, s, out, attackers)
            kept_by[(m, e, s)] = add_kept_outcomes(store, ds.name, m, e, s, out, skip=set(attackers))
            outcomes[(m, e, s)] = (cell, out)
            infos[f"{m}@{eps_key(e)}/{s}"] = {**info, "seconds": {k: round(v, 2) for k, v in rc.timing.items()},
                                              "total_seconds": round(time.perf_counter() - t0, 2)}

        for a in pixel_others:
            missing = [k for k, added in kept_by.items() if a not in added]
            if missing:
                log(f"warning: {ds.name}: the rows of '{a}' stay, but the strongest attack recomputed here leaves it "
                    f"out on {len(missing)} cell(s) (no per-probe outcomes of it kept for their probes: run it again)")

        def present(out):  # an attacker that does not apply to a cell has no outcomes, and no rows
            names = [*others, *attackers, *sorted({a for a, _ in out.hits} - {*others, *attackers})]
            return {a: recs for a in names if (recs := [r for r in recognizers if (a, r) in out.hits])}

        # the sanity check on the reference cells (first seed), as bench run does for the others
        by_method = {m: attack_rows(out, list(REID_METRICS), present(out), {}, cell.boot_seed)
                     for (m, e, s), (cell, out) in outcomes.items()
                     if m in sanity.REFERENCE_METHODS and s == run_seeds[0]}
        old = meta.get(f"attacker_sanity:{ds.name}") or {}
        stored_invalid = {a: "" for a, v in (old.get("verdicts") or {}).items() if v != "ok" and a not in attackers}
        invalid = check_sanity(store, meta, ds.name, by_method, attackers, log)

        for (m, e, s), (cell, out) in outcomes.items():
            rows = attack_rows(out, list(REID_METRICS), present(out), {**stored_invalid, **invalid}, cell.boot_seed)
            new = [r for r in rows if r.attacker in (*attackers, STRONGEST)]
            kept = [r for r in store.cell_aggregates(ds.name, m, e, s)
                    if not (r.metric in REID_METRICS and r.attacker in (*attackers, STRONGEST))]
            store.put_aggregates(ds.name, m, e, s, kept + new)
            written += [(ds.name, m, e, s, r) for r in new]
        previous = meta.get(f"recon:{ds.name}") or {}
        store.set_meta(**{f"recon:{ds.name}": {**previous, **infos, "regeneration": regen.stats.as_dict()}})
        _report(outcomes, others, attackers, recognizers, infos, log)
    if regen.stats.mismatched:
        log(f"warning: {len(regen.stats.mismatched)} of {regen.stats.checked} regenerated images differ from the "
            f"images the run measured (e.g. {regen.stats.mismatched[0]}); they were used as they came out")
    return written


def _report(outcomes, others, attackers, recognizers, infos, log) -> None:
    names = [*others, *attackers]
    log(f"{'method':<14}{'eps':>6}{'seed':>5}  " + "".join(f"{a:>15}" for a in names) +
        "   seconds: regenerate, reconstruct, embed, train")
    for (m, e, s), (cell, out) in outcomes.items():
        vals = []
        for a in names:
            r1 = [out.hits[(a, r)][REID_RANK1].mean() for r in recognizers if (a, r) in out.hits]
            vals.append(f"{max(r1):>15.3f}" if r1 else f"{'–':>15}")
        t = infos.get(f"{m}@{eps_key(e)}/{s}", {}).get("seconds", {})
        log(f"{m:<14}{eps_key(e) or '–':>6}{s:>5}  " + "".join(vals) + "   " +
            ", ".join(f"{t.get(k, 0):.1f}" for k in ("regenerate", "reconstruct", "embed", "train")))
