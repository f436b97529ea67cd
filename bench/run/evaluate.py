"""``bench.run.evaluate``: methods x data sets x ε x seeds -> every metric, in a resumable store.

The data flow is one way: data set -> originals analysed once (cached) -> each method anonymises
each image -> per-image measurements stored -> per-cell aggregates -> ``metrics.csv`` and
``summary.md``. Images are decoded once and every cell of the grid is run on an image before
the next image is read.
"""
from __future__ import annotations

import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import methods as method_registry
from bench import timing
from bench.aggregate.cells import load_cell
from bench.aggregate.fingerprint import cell_fingerprint, data_set_digest, stored_rows_if_unchanged
from bench.aggregate.fingerprint import record as record_fingerprint
from bench.aggregate.pool import aggregate_cells
from bench.attackers import default_attackers, get_attacker, sanity
from bench.attackers.data import gallery_release, training_samples
from bench.attackers.sanity import MIN_ORIGINAL_RANK1, REFERENCE_METHODS
from bench.measure.analysis import Backends, warm_up
from bench.measure.seeds import derive_seed  # noqa: F401  (re-exported: bench.run.evaluate.derive_seed)
from bench.metrics import registry as metric_registry
from bench.metrics.registry import STRONGEST
from bench.report.export import write_exports
from bench.run.dependencies import installed_versions
from bench.run.executor import (
    EXECUTORS,
    ImageWorker,
    default_workers,
    resolve_executor,
    run_local,
    run_processes,
    run_ray,
)
from bench.store.provenance import append_command
from bench.store.results import ResultStore, eps_key, store_dataset, store_datasets  # noqa: F401
from kpdp.datasets import DATASETS, DatasetError, get_dataset
from kpdp.faces import backend_names

DEFAULT_METRICS = tuple(metric_registry.selectable_groups())  # every group that --metrics can name
DEFAULT_RECOGNIZERS = ("dlib", "facenet-casia")
DEFAULT_DETECTORS = ("mtcnn", "dlib-hog")


class ArgumentError(ValueError):
    """Bad arguments: nothing has been written."""


@dataclass
class DatasetSpec:
    """One data set of the grid.

    Attributes:
        name: a registered data set (``kpdp.datasets.DATASETS``): ``lfw-sample`` (embedded, the
            default), ``lfw``, ``celeba``, ``orl``, or a plugin's.
        root: its folder (None: the embedded sample's own; the others need one).
        split: which part is evaluated (``devtest`` for LFW, ``eval`` for CelebA; None: the data
            set's default). The attackers that adapt train on the data set's identity-disjoint
            training split (``bench.attackers.data.training_split``).
    """

    name: str = "lfw-sample"
    root: str | None = None
    split: str | None = None


@dataclass
class Cell:
    """One (data set, method, ε, seed) of the grid. ``role``: ``probe`` = measured and reported;
    ``gallery`` = the same images anonymised with fresh randomness for an attacker who can run the
    method; ``train`` = the method on an attacker's identity-disjoint training images. Gallery and
    training images are stored under data set names of their own (:attr:`store_dataset`), which also
    gives them per-image seeds independent of the probes'."""

    dataset: str
    method: str
    eps: float | None
    seed: int
    role: str = "probe"

    @property
    def store_dataset(self) -> str:
        return store_dataset(self.dataset, self.role)

    @property
    def key(self) -> tuple:
        return (self.method, self.eps, self.seed, self.role)


@dataclass
class RunConfig:
    """Everything a run measures, and how. The CLI's ``bench run`` flags map one to one onto
    these fields (``--methods`` -> ``methods``, ...); a notebook builds one directly.

    Attributes:
        methods: method specs, ``name`` or ``name[key=value,...]`` (:mod:`bench.methods`); made
            canonical by :meth:`validate`, so one variant is one cell however it was typed.
        eps: privacy budgets ε per face (> 0, ``inf`` allowed); methods without ε run once.
        datasets: the data sets (:class:`DatasetSpec`).
        metrics: metric groups (``--metrics``; :func:`bench.metrics.registry.selectable_groups`):
            a group left out loads none of its models.
        recognizers: the face recognizers the attackers embed with (``kpdp.faces``).
        detectors: the face detectors whose detection rate is measured.
        seeds: run seeds; each image's seed derives from (seed, data set, method's base name, ε,
            image) (:func:`bench.measure.seeds.derive_seed`), so a resumed run draws the same noise.
        limit: the first ``limit`` images of each data set (None: all).
        device: ``cpu`` or a torch device for the models.
        out: the run's folder (``results.sqlite``, ``metrics.csv``, ``summary.md``,
            ``provenance.json``); a run into an existing folder resumes it.
        quiet: no progress bars or notes.
        reference: add the ``original`` row (the untouched images: detection on originals, FID 0,
            the attackers' sanity reference).
        executor: ``local``, ``processes`` (a pool on this machine), ``ray``, or ``auto`` (pool
            when it pays: :func:`bench.run.executor.resolve_executor`).
        ray_address: a Ray cluster to join (None: start a local one of ``workers`` CPUs).
        workers: processes or Ray actors, one thread each.
        shard_size: images per task of a pool.
        attackers: re-identification attackers (:mod:`bench.attackers`); the headline privacy
            value is the strongest valid one.
        attacker_train_images: how many identity-disjoint training images the adapting attackers
            get (None: as many as are evaluated).
        sanity_min_rank1: the rank-1 every attacker must reach on the ``original`` row to count
            (:mod:`bench.attackers.sanity`).
        reaggregate: recompute every cell, even one whose inputs are unchanged
            (:mod:`bench.aggregate.fingerprint`).
    """

    methods: list[str]
    eps: list[float] = field(default_factory=lambda: [1.0])
    datasets: list[DatasetSpec] = field(default_factory=lambda: [DatasetSpec()])
    metrics: list[str] = field(default_factory=lambda: metric_registry.selectable_groups())
    recognizers: list[str] = field(default_factory=lambda: list(DEFAULT_RECOGNIZERS))
    detectors: list[str] = field(default_factory=lambda: list(DEFAULT_DETECTORS))
    seeds: list[int] = field(default_factory=lambda: [0])
    limit: int | None = None
    device: str = "cpu"
    out: str = "runs/default"
    quiet: bool = False
    reference: bool = True  # add the `original` row (detection on originals, FID 0, ...)
    executor: str = "auto"  # local | processes (a pool on this machine) | ray (see bench.run.executor)
    ray_address: str | None = None  # None: start a local Ray cluster of `workers` CPUs
    workers: int = field(default_factory=default_workers)  # processes / Ray actors, one thread each
    shard_size: int = 16  # images per task
    attackers: list[str] = field(default_factory=default_attackers)  # see bench.attackers
    attacker_train_images: int | None = None  # semi attackers' training images; None: as many as evaluated
    sanity_min_rank1: float = MIN_ORIGINAL_RANK1  # every attacker's rank-1 on the original row
    reaggregate: bool = False  # recompute cells whose inputs are unchanged (see bench.aggregate.fingerprint)

    def validate(self) -> list[str]:
        """Raise :class:`ArgumentError` listing what is valid; return notes for the user."""
        notes = []
        specs = []
        for m in self.methods:
            try:
                specs.append(method_registry.check_spec(m))
            except (method_registry.UnknownMethod, ValueError) as exc:
                raise ArgumentError(str(exc)) from None
        self.methods = list(dict.fromkeys(specs))  # canonical: the store's cell key
        for e in self.eps:
            if not isinstance(e, (int, float)) or math.isnan(e) or e <= 0:
                raise ArgumentError(f"ε must be a number > 0 (or inf), got {e!r}")
        for m in self.metrics:
            try:
                metric_registry.get_group(m)
            except KeyError as exc:
                raise ArgumentError(exc.args[0]) from None
        for kind, names in (("recognizer", self.recognizers), ("detector", self.detectors)):
            valid = backend_names(kind)
            for n in names:
                if n not in valid:
                    raise ArgumentError(f"unknown {kind} '{n}'; valid: {', '.join(valid)}")
        for d in self.datasets:
            if d.name not in DATASETS:
                raise ArgumentError(f"unknown data set '{d.name}'; valid: {', '.join(sorted(DATASETS))}")
            if d.root is not None and not Path(d.root).is_dir():
                raise ArgumentError(f"data set '{d.name}': root {d.root} does not exist")
        if self.executor not in EXECUTORS + ("auto",):
            raise ArgumentError(f"unknown executor '{self.executor}'; valid: {', '.join(EXECUTORS)}")
        if self.executor == "ray":
            try:
                import ray  # noqa: F401
            except ImportError:
                raise ArgumentError("--executor ray needs Ray: pip install 'ray>=2.9'") from None
        for a in self.attackers:
            try:
                get_attacker(a)
            except KeyError as exc:
                raise ArgumentError(exc.args[0]) from None
        if self.attacker_train_images is not None and self.attacker_train_images < 0:
            raise ArgumentError("--attacker-train-images must be >= 0")
        if self.workers < 1 or self.shard_size < 1:
            raise ArgumentError("--workers and --shard-size must be at least 1")
        if self.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                notes.append("--device cuda asked for but no GPU is visible: running on the CPU")
                self.device = "cpu"
        no_eps = [m for m in self.methods if not method_registry.uses_eps(m)]
        if no_eps and self.eps:
            notes.append(f"ε does not apply to {', '.join(no_eps)}: run once each, eps left empty")
        return notes

    def cells(self, dataset: str) -> list[Cell]:
        methods = (["original"] if self.reference and "original" not in self.methods else []) + list(self.methods)
        out = []
        for m in methods:
            for e in (self.eps if method_registry.uses_eps(m) else [None]):
                for s in self.seeds:
                    out.append(Cell(dataset, m, e, s))
        return out


def versions() -> dict:
    """Python's version and the installed version of every direct dependency (the tested ranges are
    :mod:`bench.run.dependencies`'s), recorded in each run."""
    return {"python": platform.python_version(), **installed_versions()}


def evaluate(cfg: RunConfig, argv: list[str] | None = None, log=print):
    """Run (or resume) the grid ``cfg`` describes and return its aggregates.

    Args:
        cfg: what to measure (:class:`RunConfig`); validated first (:class:`ArgumentError`, and
            nothing is written, on a bad one).
        argv: the command line recorded in the run's provenance (None: ``sys.argv``).
        log: where notes, warnings and the per-cell lines go (``print``; a no-op silences them).

    Returns:
        the long-format aggregates as a pandas DataFrame, one row per (data set, method, ε, seed,
        metric, backend, attacker) with ``value``, ``n``, ``ci_low``, ``ci_high``, ``valid``: the
        rows of ``metrics.csv``, which is written beside ``summary.md`` in ``cfg.out``.

    Raises:
        ArgumentError: bad arguments. ``kpdp.faces.BackendUnavailable``: a model's weights are
        missing. ``bench.run.executor.RunFailed``, ``bench.store.cache.StorageError``,
        ``bench.run.executor.Interrupted``: the run stopped; calling again resumes it.
    """
    from tqdm import tqdm

    wall0 = time.perf_counter()
    timing.reset()
    notes = cfg.validate()
    datasets = []
    for d in cfg.datasets:
        try:
            datasets.append(get_dataset(d.name, d.root, d.split))
        except DatasetError as exc:
            raise ArgumentError(str(exc)) from None
    n_images = sum(min(len(ds.samples), cfg.limit or len(ds.samples)) for ds in datasets)
    cfg.executor = resolve_executor(cfg.executor, cfg.workers, n_images, cfg.shard_size)
    # backends load before anything is written: an online-only backend fails here, fast
    # (after the executor is known: how many processes share a GPU decides where MTCNN runs)
    backends = Backends.for_config(cfg)
    methods: dict[tuple, object] = {}
    for ds in datasets:
        for c in cfg.cells(ds.name):
            if (c.method, c.eps) not in methods:
                try:
                    methods[(c.method, c.eps)] = method_registry.create(c.method, c.eps, cfg.device)
                except ValueError as exc:
                    raise ArgumentError(str(exc)) from None
    for n in notes:
        log(f"note: {n}")
    store = ResultStore(cfg.out)
    # every method the store holds, not only this invocation's: `bench attack` and reports find
    # the cells of an earlier command into the same folder by these entries
    earlier_methods = store.meta().get("methods") or {}
    command = append_command(store, argv or sys.argv)
    store.set_meta(versions=versions(), backends=backends.versions(), seeds=cfg.seeds,
                   git_commit=command["git_commit"], noise_mode="seeded",
                   methods={**earlier_methods,
                            **{f"{m}@{eps_key(e)}": {**obj.describe(), "version": obj.version, "spec": m,
                                                     "params": method_registry.parse_spec(m)[1]}
                               for (m, e), obj in methods.items()}},
                   datasets=[{"name": ds.name, "root": str(ds.root), "split": ds.split} for ds in datasets],
                   metrics=cfg.metrics, metric_versions=metric_registry.versions(), limit=cfg.limit,
                   executor={"name": cfg.executor, "workers": cfg.workers, "shard_size": cfg.shard_size})
    warm_up(backends)
    worker = ImageWorker(cfg, backends, methods) if cfg.executor == "local" else None
    timing.PHASES["setup"] += time.perf_counter() - wall0

    def execute(dataset: str, samples, cells) -> None:
        with tqdm(total=len(samples), desc=f"{dataset}: {len(cells)} cells", disable=cfg.quiet,
                  mininterval=2) as bar:
            if cfg.executor == "local":
                run_local(worker, store, dataset, samples, cells, bar)
            elif cfg.executor == "processes":
                run_processes(cfg, store, dataset, samples, cells, bar)
            else:
                run_ray(cfg, store, dataset, samples, cells, bar)

    for ds in datasets:
        samples = list(ds.samples)[: cfg.limit] if cfg.limit else list(ds.samples)
        cells = cfg.cells(ds.name)
        with timing.phase("grid"):
            execute(ds.name, samples, cells + attacker_gallery_cells(cfg, cells))
        train = attacker_training(cfg, store, ds, len(samples), cells, log)
        if train:
            with timing.phase("attacker training images"):
                execute(store_dataset(ds.name, "train"), *train)
        shared: dict = {}  # verification thresholds, τ, attack outcomes: once per data set
        image_ids = [s.image_id for s in samples]  # the gallery and FID reference: exactly this run's images
        with timing.phase("aggregation"):
            shared["invalid_attackers"] = check_attackers(cfg, store, ds, backends, cells, shared, image_ids, log)
            names = store_datasets(ds.name)
            inputs = None if cfg.reaggregate else data_set_digest(store, names, command["git_commit"])
            fps = [cell_fingerprint(store, c, cfg, names, image_ids, shared["invalid_attackers"], inputs)
                   for c in cells]
            stored = [stored_rows_if_unchanged(store, c, fp) for c, fp in zip(cells, fps)]
            fresh = aggregate_cells(store, [c for c, rows in zip(cells, stored) if rows is None], cfg, backends,
                                    ds, shared, image_ids, log)
            for c, fp, rows in zip(cells, fps, stored):
                kept = rows is not None
                if not kept:
                    rows = next(fresh)
                    record_fingerprint(store, c, fp)
                if not cfg.quiet:
                    log(cell_line(c, rows) + ("  (unchanged since its last aggregation: stored rows kept)"
                                              if kept else ""))
            next(fresh, None)  # past the last cell: the pool shuts down
        earlier_fits = store.meta().get(f"attacker_fits:{ds.name}") or {}  # kept cells fitted nothing now
        store.set_meta(**{f"attacker_fits:{ds.name}": {**earlier_fits, **{
            f"{m}@{eps_key(e)}/{sd}/{a}/{r}": info for k, o in shared.items() if k[0] == "attack"
            for (m, e, sd) in [k[1]] for (a, r), info in o.info.items() if any(info.values())}}})
    df = store.aggregates()

    store.set_meta(timing={**timing.snapshot(), "wall": time.perf_counter() - wall0})
    write_exports(store, df)
    store.close()
    return df


def attacker_gallery_cells(cfg: RunConfig, cells: list[Cell]) -> list[Cell]:
    """The second releases that attackers who run the method need and no probe cell provides."""
    if not any(get_attacker(a).gallery == "anonymised" for a in cfg.attackers) or "reid" not in cfg.metrics:
        return []
    out = []
    for c in cells:
        role, seed = gallery_release(c.method, c.seed, cfg.seeds)
        if role == "gallery":
            out.append(Cell(c.dataset, c.method, c.eps, seed, "gallery"))
    return out


def attacker_training(cfg: RunConfig, store, ds, n_eval: int, cells: list[Cell], log):
    """(samples, cells) of the semi attackers' training images (the first seed only: an attacker
    is trained once per method and ε), or None; records where the training data came from."""
    if not any(get_attacker(a).trains for a in cfg.attackers) or "reid" not in cfg.metrics:
        return None
    n = n_eval if cfg.attacker_train_images is None else cfg.attacker_train_images
    samples, source = training_samples(ds, n, seed=cfg.seeds[0])
    store.set_meta(**{f"attacker_training:{ds.name}": {"source": source, "n_images": len(samples)}})
    if not cfg.quiet:
        log(f"note: attackers that adapt train on {source}")
    if not samples:
        return None
    first = cfg.seeds[0]
    return samples, [Cell(c.dataset, c.method, c.eps, c.seed, "train") for c in cells if c.seed == first]


def check_attackers(cfg: RunConfig, store, ds, backends, cells, shared, image_ids, log) -> dict[str, str]:
    """Every attacker's sanity check (:mod:`bench.attackers.sanity`) on this data set's reference
    rows; returns {attacker: why it is invalid} and records the verdicts in the run, beside those
    of attackers that other commands ran into it (``bench attack``). A reference cell that an
    earlier command into the same store finished serves when this run has none (a run that adds
    methods to a store still checks its attackers on blur)."""

    reid = next((g for g in backends.groups if g.name == "reid"), None)
    if reid is None:
        return {}
    first = cfg.seeds[0]
    refs = [c for c in cells if c.method in REFERENCE_METHODS and c.seed == first]
    refs += [Cell(ds.name, m, None, first) for m in REFERENCE_METHODS
             if not any(c.method == m for c in refs) and store.cell_finished(ds.name, m, None, first)]
    by_method = {}
    for c in refs:
        if c.method not in by_method:
            by_method[c.method] = reid.aggregate(load_cell(store, c, cfg, backends, ds, image_ids, shared))
    invalid = sanity.check(by_method, cfg.attackers, cfg.sanity_min_rank1)
    notes = sanity.unchecked(by_method)
    for a, why in invalid.items():
        log(f"warning: attacker '{a}' failed its sanity check on {ds.name}: {why}; its rows are marked "
            "invalid and left out of the strongest attack")
    if not cfg.quiet:
        for n in notes:
            log(f"note: {n}")
    earlier = (store.meta().get(f"attacker_sanity:{ds.name}") or {}).get("verdicts") or {}
    store.set_meta(**{f"attacker_sanity:{ds.name}": {
        "min_original_rank1": cfg.sanity_min_rank1, "notes": notes,
        "verdicts": {**earlier, **{a: invalid.get(a, "ok") for a in cfg.attackers}}}})
    return invalid


def cell_line(c: Cell, rows) -> str:
    """One line per finished cell: the headline metric of each role (see the metric registry);
    privacy is the strongest attack (``attacker = max``) and names the attacker."""
    privacy = metric_registry.headline("privacy").name
    attacks = [r for r in rows if r[0] == privacy and r[1] == STRONGEST and getattr(r, "attacker", "") not in ("", STRONGEST)
               and getattr(r, "valid", True)]
    winner = max(attacks, key=lambda r: r[2]).attacker if attacks else None
    rows = [r for r in rows if getattr(r, "attacker", "") in ("", STRONGEST)]
    get = {(r[0], r[1]): r[2] for r in rows}
    parts = [f"{c.dataset} {c.method}" + (f" eps={c.eps:g}" if c.eps is not None else "") + f" seed={c.seed}:"]
    for role, fmt in (("privacy", "{name}[{backend}]={v:.3f}"), ("detection", "{name}[{backend}]={v:.3f}"),
                      ("quality", "{name}={v:.1f}"), ("cost", "{v:.2f}s/img")):
        spec = metric_registry.headline(role)
        backends = [b for m, b in get if m == spec.name]
        b = metric_registry.default_backend(spec, backends)
        v = get.get((spec.name, b))
        if v is not None and not math.isnan(v):
            parts.append(fmt.format(name=spec.name, backend=b, v=v) + (f" ({winner})" if role == "privacy" and winner
                                                                        else ""))
    return " ".join(parts)
