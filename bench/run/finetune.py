"""Running ``semi-finetune`` on a finished run: remake the images it needs, train (or load) the
fine-tuned FaceNet per cell, score it like every attacker, append its rows and the recomputed
strongest attack to the run's results; and the ``bench attack`` command. The model, its training
and its checkpoints are in :mod:`bench.attackers.semi_finetune`."""
from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from bench import methods as method_registry
from bench.aggregate.cells import load_cell
from bench.attackers import sanity
from bench.attackers.data import FOLDS_SOURCE, gallery_release, training_samples, training_split, whole_people
from bench.attackers.outcomes import Outcomes, _attack_once, _merge, attack
from bench.attackers.registry import Attacker, available, get_attacker
from bench.attackers.reid_group import attack_rows
from bench.attackers.semi_finetune import (
    METRICS,
    NAME,
    RECOGNIZER,
    FinetuneConfig,
    Model,
    _check_blocks,
    checkpoint_key,
    key_id,
)
from bench.attackers.semi_linear import identity_folds
from bench.methods import split_specs
from bench.metrics.registry import STRONGEST
from bench.metrics.reid_scores import REID_RANK1, REID_TAR_FAR, genuine_pairs, probe_mask
from bench.report.export import write_exports
from bench.run.evaluate import Cell
from bench.run.finetune_data import Regenerator, Release, ensure_releases, originals, stored_digests
from bench.run.passes import (add_kept_outcomes, aggregation_config, cells_to_attack, check_sanity, keep_outcomes,
                              run_calibration, run_cells, run_recognizers, run_samples)
from bench.store.cache import FeatureCache
from bench.store.provenance import append_command
from bench.store.results import ResultStore, eps_key, store_dataset
from kpdp.datasets import get_dataset

# --- attacking one cell of a run ----------------------------------------------------------------


class CellAttack:
    """semi-finetune's per-probe outcomes for one cell (a :class:`bench.aggregate.cells.CellData` read
    from the run's store), with the training and the images it needs. ``ds``: the evaluated data
    set; ``train_release``: the run's training images of the method (None: identity folds)."""

    def __init__(self, cell, ds, model: Model, regen, run_seed: int, train_release, log=print):
        self.cell, self.ds, self.model, self.regen, self.log = cell, ds, model, regen, log
        self.seed = run_seed
        self.train_release = train_release  # None: identity folds of the gallery
        self.cache = FeatureCache()
        self.info: dict = {}

    # the images of one release, embedded by several heads (cached per head and image digest)
    def embeddings(self, release, image_ids, heads: dict) -> dict[str, dict[str, np.ndarray]]:
        """{head id: {image id: embedding}} of the release's ok images among ``image_ids``."""

        digests = stored_digests(self.cell.store, release)
        ids = [i for i in image_ids if i in digests]
        out = {h: {} for h in heads}
        missing = set()
        for h in heads:
            for i in ids:
                d = digests[i]
                v = self.cache.get_array(FeatureCache.key(NAME, f"{h}|{release.origin}|{i}", d)) if d else None
                if v is None:
                    missing.add(i)
                else:
                    out[h][i] = v
        todo = [i for i in ids if i in missing]
        if todo:
            crops = self.regen.crops(release, todo)
            got = [i for i in todo if i in crops]
            feats = self.model.trunk(np.stack([crops[i] for i in got])) if got else None
            mismatched = {m[1] for m in self.regen.stats.mismatched if m[0] == release.label()}
            for h, head in heads.items():
                if not got:
                    continue
                emb = self.model.embed(head, feats)
                for i, e in zip(got, emb):
                    out[h][i] = e
                    if digests[i] and i not in mismatched:  # only what is exactly the run's image is cached
                        self.cache.put_array(FeatureCache.key(NAME, f"{h}|{release.origin}|{i}", digests[i]), e)
        return out

    def _train(self, release, image_ids, identity_of: dict, fold):
        """A head trained on the release's images ``image_ids`` (people ``identity_of``)."""

        digests = stored_digests(self.cell.store, release)
        ids = [i for i in image_ids if i in digests]
        key = checkpoint_key(self.cell.method, self.cell.eps, self.seed, [(i, digests[i] or "") for i in ids],
                             self.model.cfg, fold)

        def features():
            crops = self.regen.crops(release, ids)
            got = [i for i in ids if i in crops]
            stack = np.stack([crops[i] for i in got]) if got else np.zeros((0, 160, 160, 3), np.uint8)
            import torch

            feats = torch.cat([self.model.trunk(stack), self.model.trunk(stack, flip=True)])
            labels = np.array([identity_of[i] for i in got] * 2)
            return feats, labels, len(got)

        what = f"{self.cell.method}" + (f" eps={self.cell.eps:g}" if self.cell.eps is not None else "") + \
            (f" fold {fold}" if fold is not None else "")
        head, cost = self.model.trained_head(key, features, self.seed,
                                             log=lambda m: self.log(f"{NAME} {what}:{m}"))
        self.log(f"{NAME} {what}: " + (f"checkpoint reused ({cost['checkpoint']})" if cost["cached"] else
                                       f"trained {cost['steps']} steps on {cost['images']} images of "
                                       f"{cost['people']} people in {cost['train_seconds']:.1f} s, loss "
                                       f"{_fmt(cost['loss_before'])} -> {_fmt(cost['loss_after'])}"))
        return key_id(key), head, cost

    def run(self) -> dict:
        """{metric: per-probe outcomes} as :func:`bench.attackers.outcomes.attack` makes them."""

        c = self.cell
        G_ids, ids, index = c.gallery_identities, c.probe_identities, c.probe_index
        probe_ids = [p[0] for p in c.probes]
        probe_rel = Release(c.dataset, c.dataset, c.method, c.eps, c.seed)
        role, gseed = gallery_release(c.method, c.seed, c.seeds)
        gal_rel = Release(c.dataset, store_dataset(c.dataset, role), c.method, c.eps, gseed)
        keep = probe_mask(G_ids, ids)
        position = np.cumsum(keep) - 1

        if self.train_release is not None:
            rel = self.train_release
            have = stored_digests(c.store, rel)
            ids_train = sorted(have)
            if self.model.cfg.train_images is not None:  # the budget: whole people, the run's seeded order
                subset = {s.image_id for s in training_samples(self.ds, self.model.cfg.train_images, self.seed)[0]}
                ids_train = [i for i in ids_train if i in subset]
            ident = {i: v[0] for i, v in originals(c.store, rel.origin, ids_train).items()}
            ids_train = [i for i in ids_train if i in ident]
            hid, head, cost = self._train(rel, ids_train, ident, None)
            self.info = {"source": (c.store.meta().get(f"attacker_training:{c.dataset}") or {}).get("source", ""),
                         **cost}
            heads = {hid: head}
            P = self._aligned(self.embeddings(probe_rel, probe_ids, heads)[hid], probe_ids)[0]
            G, present = self._aligned(self.embeddings(gal_rel, c.gallery_ids, heads)[hid], c.gallery_ids)
            hits = _attack_once(Attacker(self.seed), P, ids, index, G, G_ids, present, None)
            hits[REID_TAR_FAR] = hits[REID_TAR_FAR][np.argsort(hits.pop("_owner"), kind="stable")]
            return hits

        # no training split: two identity folds of the gallery, as semi-linear does

        folds = identity_folds(G_ids, 2, self.seed)
        gal_ident = dict(zip(c.gallery_ids, G_ids))
        have = set(self._aligned_ids(gal_rel, c.gallery_ids))
        heads, infos = {}, []
        for f in (0, 1):
            train_ids = [g for g, fo in zip(c.gallery_ids, folds) if fo != f and g in have]
            if self.model.cfg.train_images is not None:
                train_ids = _whole_people(train_ids, gal_ident, self.model.cfg.train_images, self.seed)
            hid, head, cost = self._train(gal_rel, train_ids, gal_ident, f)
            heads[f] = (hid, head)
            infos.append(cost)
        self.info = {"source": FOLDS_SOURCE, "folds": infos,
                     "train_seconds": sum(i["train_seconds"] for i in infos),
                     "steps": sum(i["steps"] for i in infos), "images": sum(i["images"] for i in infos),
                     "cached": all(i["cached"] for i in infos)}
        all_heads = {hid: head for hid, head in heads.values()}
        pe = self.embeddings(probe_rel, probe_ids, all_heads)
        ge = self.embeddings(gal_rel, c.gallery_ids, all_heads)
        parts = []
        for f in (0, 1):
            hid = heads[f][0]
            P = self._aligned(pe[hid], probe_ids)[0]
            G, present = self._aligned(ge[hid], c.gallery_ids)
            sel = folds[index] == f
            parts.append((sel, _attack_once(Attacker(self.seed), P[sel], ids[sel], index[sel], G, G_ids, present,
                                            None)))
        return _merge(parts, keep, position)

    def _aligned_ids(self, release, image_ids):
        have = stored_digests(self.cell.store, release)
        return [i for i in image_ids if i in have]

    @staticmethod
    def _aligned(emb: dict, image_ids) -> tuple[np.ndarray, np.ndarray]:
        out = np.zeros((len(image_ids), 512))
        present = np.zeros(len(image_ids), bool)
        for k, i in enumerate(image_ids):
            if i in emb:
                out[k], present[k] = emb[i], True
        return out, present


def _whole_people(image_ids, identity_of: dict, n: int, seed: int) -> list:
    """Up to ``n`` of ``image_ids``, whole people (2+ images) in a seeded order."""

    return whole_people(image_ids, identity_of.__getitem__, n, seed)


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.3f}"


# --- rows: the attacker's own, and the strongest attack recomputed with it -----------------------

def reid_rows(outcomes, recognizers: dict[str, list[str]], invalid: dict, boot_seed: int) -> list:
    """Rows exactly as the reid group makes them, with each attacker's own recognizers
    (``recognizers``: {attacker: names})."""

    return attack_rows(outcomes, list(METRICS), recognizers, invalid, boot_seed)


def _run_attackers(store, dataset: str) -> list[str]:
    """The attackers whose rows a run holds (ladder order), less this one."""
    have = store.attackers_with(dataset, REID_RANK1) - {"", STRONGEST, NAME}
    have -= {a for a in have if a in available() and get_attacker(a).pixels}  # kept outcomes: passes.add_kept_outcomes
    order = {a: i for i, a in enumerate(available())}
    return sorted(have, key=lambda a: (order.get(a, len(order)), a))


# --- the command -------------------------------------------------------------------------------

def attack_run(run_dir, methods: list[str] | None = None, eps: list[float] | None = None,
               seeds: list[int] | None = None, cfg: FinetuneConfig | None = None, log=print, net=None,
               argv: list[str] | None = None) -> list:
    """Run semi-finetune on the cells of a finished run (``methods``/``eps``/``seeds``: a selection,
    None = all) and the reference cells of its sanity check (``original``, ``blur``), append its rows
    to the run's results and rewrite ``metrics.csv`` and ``summary.md``. Returns the rows written.
    ``argv``: the command, added to the run's history of commands (a ``bench run`` that runs the
    attacker after its grid records its own command instead)."""
    cfg = cfg or FinetuneConfig()
    run_dir = Path(run_dir)
    if not (run_dir / "results.sqlite").is_file():
        raise FileNotFoundError(f"{run_dir}/results.sqlite: not a run directory (the store is needed, not only "
                                "metrics.csv)")
    if cfg.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            log("note: --device cuda asked for but no GPU is visible: running on the CPU")
            cfg.device = "cpu"
    store = ResultStore(run_dir)
    if argv:
        append_command(store, argv)
    meta = store.meta()
    run_seeds = list(meta.get("seeds") or [0])
    seeds = [s for s in (seeds or run_seeds) if s in run_seeds] or run_seeds
    run_methods = run_cells(meta)
    wanted = [method_registry.canonical(m) for m in methods] if methods else None
    eps_wanted = {eps_key(e) for e in eps} if eps else None

    def selected(m, e):
        return ((wanted is None or m in wanted) and (eps_wanted is None or e is None or eps_key(e) in eps_wanted))

    regen = Regenerator.for_run(store, meta)
    model = Model(cfg, net)
    written = []
    recognizers = run_recognizers(meta)
    for d in meta.get("datasets") or []:
        ds = get_dataset(d["name"], d.get("root"), d.get("split"))
        samples = run_samples(ds, meta)
        image_ids = [s.image_id for s in samples]
        others = _run_attackers(store, ds.name)
        run_cfg = aggregation_config(recognizers, run_seeds, others)
        shared = run_calibration(meta, ds.name, recognizers)
        train_ds, _ = training_split(ds)
        train_name = store_dataset(ds.name, "train")
        todo = cells_to_attack(run_methods, run_seeds, seeds, selected)
        unknown = sorted(set(wanted or []) - {m for m, _ in run_methods})
        if unknown:
            log(f"note: not in this run: {', '.join(unknown)} (its methods: "
                f"{', '.join(dict.fromkeys(m for m, _ in run_methods))})")
        if not todo:
            log(f"note: {ds.name}: no cell of the run matches --methods/--eps/--seeds")
            continue
        # the releases the attacker needs and the run may not hold (made as bench run would)
        need, train_samples = [], []
        for m, e, s in todo:
            role, gseed = gallery_release(m, s, run_seeds)
            if role == "gallery":
                need.append(Release(ds.name, store_dataset(ds.name, "gallery"), m, e, gseed))
            if train_ds is not None:
                need.append(Release(train_name, train_name, m, e, run_seeds[0]))
        if train_ds is not None and any(not store.done_images(r.store_dataset, r.method, r.eps, r.seed)
                                        for r in need if r.origin == train_name):
            n = (meta.get(f"attacker_training:{ds.name}") or {}).get("n_images") or cfg.train_images or len(samples)
            train_samples, source = training_samples(ds, n, seed=run_seeds[0])
            store.set_meta(**{f"attacker_training:{ds.name}": {"source": source, "n_images": len(train_samples)}})
        ensure_releases(store, ds, need, {ds.name: samples, train_name: train_samples}, recognizers,
                        log)

        outcomes, infos, kept_by = {}, {}, {}
        for m, e, s in todo:
            t0 = time.perf_counter()
            before = regen.stats.images, regen.stats.seconds
            c = Cell(ds.name, m, e, s)
            cell = load_cell(store, c, run_cfg, None, ds, image_ids, shared)
            if not cell.probes:
                log(f"note: {ds.name} {m} {eps_key(e)} seed {s}: no probe in the store")
                continue
            out = cell.memo("attack", (m, e, s), lambda: attack(cell, others)) if others else None
            train_rel = (Release(train_name, train_name, m, e, run_seeds[0])
                         if train_ds is not None else None)
            ca = CellAttack(cell, ds, model, regen, run_seeds[0], train_rel, log)
            hits = ca.run()
            out = out or _empty_outcomes(cell)
            out.hits[(NAME, RECOGNIZER)] = hits
            out.info[(NAME, RECOGNIZER)] = ca.info
            keep_outcomes(store, ds.name, m, e, s, out, [NAME])
            kept_by[(m, e, s)] = add_kept_outcomes(store, ds.name, m, e, s, out, skip={NAME})
            outcomes[(m, e, s)] = (cell, out)
            infos[f"{m}@{eps_key(e)}/{s}"] = {
                **{k: v for k, v in ca.info.items() if k != "folds"},
                **({"folds": ca.info["folds"]} if "folds" in ca.info else {}),
                "regenerated_images": regen.stats.images - before[0],
                "regenerate_seconds": round(regen.stats.seconds - before[1], 2),
                "seconds": round(time.perf_counter() - t0, 2)}

        # the sanity check, on the reference cells (first seed), as bench run does for the others
        by_method = {}
        for (m, e, s), (cell, out) in outcomes.items():
            if m in sanity.REFERENCE_METHODS and s == run_seeds[0]:
                by_method[m] = reid_rows(out, {a: _recs(a, recognizers) for a in [*others, NAME]
                                               if (a, _recs(a, recognizers)[0]) in out.hits}, {}, cell.boot_seed)
        old = meta.get(f"attacker_sanity:{ds.name}") or {}
        stored_invalid = {a for a, v in (old.get("verdicts") or {}).items() if v != "ok" and a != NAME}
        invalid = check_sanity(store, meta, ds.name, by_method, [NAME], log)

        for (m, e, s), (cell, out) in outcomes.items():
            recs = {a: _recs(a, recognizers) for a in [*others, NAME]} | kept_by.get((m, e, s), {})
            rows = reid_rows(out, recs, {**{a: "" for a in stored_invalid}, **invalid}, cell.boot_seed)
            new = [r for r in rows if r.attacker in (NAME, STRONGEST)]
            kept = [r for r in store.cell_aggregates(ds.name, m, e, s)
                    if not (r.metric in METRICS and r.attacker in (NAME, STRONGEST))]
            store.put_aggregates(ds.name, m, e, s, kept + new)
            written += [(ds.name, m, e, s, r) for r in new]
        previous = meta.get(f"{NAME}:{ds.name}") or {}
        store.set_meta(**{f"{NAME}:{ds.name}": {**previous, **infos, "config": asdict(cfg),
                                                "regeneration": regen.stats.as_dict()}})
        _report(outcomes, others, recognizers, infos, log)
    if regen.stats.mismatched:
        log(f"warning: {len(regen.stats.mismatched)} of {regen.stats.checked} regenerated images differ from the "
            f"images the run measured (e.g. {regen.stats.mismatched[0]}); they were used as they came out")
    write_exports(store, store.aggregates())
    store.close()
    return written


def _recs(attacker: str, recognizers: list[str]) -> list[str]:
    return [RECOGNIZER] if attacker == NAME else list(recognizers)


def _empty_outcomes(cell):
    G_ids, ids, index = cell.gallery_identities, cell.probe_identities, cell.probe_index
    keep = probe_mask(G_ids, ids)
    out = Outcomes(groups=ids[keep])
    dummy = np.eye(len(G_ids), 1)
    _, owner = genuine_pairs(dummy[index], ids, index, dummy, G_ids)
    out.pair_groups = out.groups[np.sort(owner, kind="stable")]
    return out


def _report(outcomes, others, recognizers, infos, log) -> None:

    log(f"{'method':<14}{'eps':>6}{'seed':>5}  " + "".join(f"{a:>15}" for a in [*others, NAME]) +
        "   train (s, steps, images)")
    for (m, e, s), (cell, out) in outcomes.items():
        vals = []
        for a in [*others, NAME]:
            recs = _recs(a, recognizers)
            r1 = [out.hits[(a, r)][REID_RANK1].mean() for r in recs if (a, r) in out.hits]
            vals.append(f"{max(r1):>15.3f}" if r1 else f"{'–':>15}")
        i = infos.get(f"{m}@{eps_key(e)}/{s}", {})
        log(f"{m:<14}{eps_key(e) or '–':>6}{s:>5}  " + "".join(vals) +
            f"   {i.get('train_seconds', 0):.0f}, {i.get('steps')}, {i.get('images')}" +
            (" (cached)" if i.get("cached") else ""))


def add_commands(sub) -> None:
    """``bench attack semi-finetune --run RUN_DIR ...``"""
    s = sub.add_parser("attack", help="run an attacker that learns from the anonymised images (semi-finetune) "
                       "on a finished run, appending its rows to the run's results")
    s.add_argument("attacker", choices=[NAME])
    s.add_argument("--run", required=True, help="run directory (its results.sqlite)")
    s.add_argument("--methods", help="comma-separated method specs of the run (default: all); the sanity "
                   "check's reference cells (original, blur) are always attacked")
    s.add_argument("--eps", help="comma-separated ε of the run (default: all)")
    s.add_argument("--seeds", help="comma-separated seeds of the run (default: all)")
    d = FinetuneConfig()
    s.add_argument("--steps", type=int, default=d.steps, help=f"optimiser steps per training (default {d.steps}, "
                   "~0.1-0.15 s each on one CPU core)")
    s.add_argument("--train-images", type=int, help="at most this many training images, whole people (default: "
                   "all the run holds)")
    s.add_argument("--blocks", type=int, default=d.blocks, help=f"Block8 modules fine-tuned, 1-6 (default {d.blocks}: "
                   "block8 and repeat_3.4)")
    s.add_argument("--batch", type=int, default=d.batch)
    s.add_argument("--device", default="cpu", help="cpu or cuda (the network; methods run as the run ran them)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_attack)


def cmd_attack(a) -> int:
    cfg = FinetuneConfig(steps=a.steps, batch=a.batch, blocks=_check_blocks(a.blocks), train_images=a.train_images,
                         device=a.device)
    methods = split_specs(a.methods) if a.methods else None
    eps = [float(x) for x in a.eps.split(",")] if a.eps else None
    seeds = [int(x) for x in a.seeds.split(",")] if a.seeds else None
    quiet = getattr(a, "quiet", False)
    attack_run(a.run, methods, eps, seeds, cfg, log=(lambda m: None) if quiet else print, argv=sys.argv)
    print(f"results: {a.run}/metrics.csv, {a.run}/summary.md")
    return 0
