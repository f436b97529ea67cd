"""Where the per-image work of a grid runs: in this process (``local``), in a pool of worker
processes on this machine (``processes``) or as Ray tasks (``ray``).

All run the same :class:`ImageWorker` and write through one writer, the driver's
:class:`bench.store.results.ResultStore`:

* ``local``: image-major. Each image is decoded once, analysed once (cached), and every cell not
  yet done runs on it before the next image; the store commits after every image, so a killed
  run loses at most one image's work.
* ``processes``: tasks of ``shard_size`` images with every cell, on ``workers`` spawned
  processes of one thread each; records come back to the driver, which writes them.
* ``ray``: the grid is cut into tasks of (cell, shard of ``shard_size`` images) and handed to a
  pool of Ray actors (one per worker; each loads the models once). Workers never touch the store:
  a task returns its records and the driver writes and commits them when the task finishes, so a
  killed run loses at most the tasks in flight. Per-image seeds depend only on (seed, data set,
  method, ε, image), so the records equal those of the local executor. Each task decodes its
  images again (a cell-major cut trades that for parallelism); the originals' analysis comes from
  the feature cache, which is shared on one machine and per node on a cluster.

Faults: a :class:`bench.store.cache.StorageError` (a damaged store, a full disk) is never recorded as a
skipped image: it stops the run. An image on which a backend raised is skipped with stage
``original-error`` and tried again by the next run; :func:`check_health` fails the run
(:class:`RunFailed`) when it measured no image, or when one such reason skipped (or one method
failed on) more than half of the images. Ctrl-C / SIGTERM (:class:`Interrupted`) stop the pool's
workers at once; what was committed stays, and the same command resumes.
"""
from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter

import numpy as np

from bench import methods as method_registry
from bench import timing
from bench.measure.analysis import Backends, analyse_original, face_from_json, measure_anonymised, warm_up
from bench.measure.seeds import anonymise
from bench.processes import spawn_pool, terminate
from bench.store.cache import FeatureCache, StorageError, default_cache_dir, file_digest
from bench.store.results import RETRYABLE_STAGE, eps_key
from kpdp.datasets import ImageLoadError, load_image

EXECUTORS = ("local", "processes", "ray")


class RunFailed(RuntimeError):
    """The run measured nothing, or most images failed for one reason that is not about the image."""


class Interrupted(KeyboardInterrupt):
    """SIGINT / SIGTERM: stop now; ``exit_code`` is 128 + the signal's number (130, 143)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def raise_on_signals(signums=(signal.SIGINT, signal.SIGTERM)) -> dict:
    """Turn SIGINT / SIGTERM into :class:`Interrupted` in this (main) thread; returns the previous
    handlers (give them to :func:`restore_signals`)."""
    import threading

    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        return {}

    def handler(signum, frame):
        raise Interrupted(signum)

    return {s: signal.signal(s, handler) for s in signums}


def restore_signals(previous: dict) -> None:
    for s, h in previous.items():
        signal.signal(s, h)


class RecordingSink:
    """Collects what a worker would write, to be replayed into the store by the one writer."""

    def __init__(self):
        self.ops: list[tuple] = []

    def put_original(self, *args):
        self.ops.append(("put_original", args))

    def put_image(self, *args):
        self.ops.append(("put_image", args))

    def skip(self, *args):
        self.ops.append(("skip", args))

    def commit(self):
        pass


def replay(ops: list[tuple], store) -> int:
    """Write a worker's records; returns how many anonymised images they hold."""
    n = 0
    for name, args in ops:
        if name == "put_original" and store.has_original(args[0], args[1]):
            continue
        getattr(store, name)(*args)
        n += name == "put_image"
    store.commit()
    return n


class ImageWorker:
    """The models of one process and the loop that runs cells on images."""

    def __init__(self, cfg, backends: Backends | None = None, methods: dict | None = None,
                 threads: int | None = None):
        if threads is not None:  # workers of a pool: one thread each, the pool fills the cores
            import torch

            torch.set_num_threads(threads)
        self.cfg = cfg
        self.backends = backends or Backends.for_config(cfg)
        self.methods = methods if methods is not None else {}
        self.cache = FeatureCache()
        if backends is None:
            warm_up(self.backends)

    def method(self, name: str, eps):
        if (name, eps) not in self.methods:
            self.methods[(name, eps)] = method_registry.create(name, eps, self.cfg.device)
        return self.methods[(name, eps)]

    def run(self, dataset: str, samples, cells, done: dict, sink, known_originals: set | None = None,
            skipped: set | None = None, on_image=None) -> None:
        """Run every cell of ``cells`` not in ``done[cell.key]`` on every sample. ``dataset`` is
        where the originals are recorded (an attacker's training images have a data set of their own)."""

        known_originals = known_originals or set()
        skipped = skipped or set()
        # images that only an attacker uses (its training split) need only what re-identification needs
        groups = ("reid",) if cells and all(c.role == "train" for c in cells) else None
        for s in samples:
            todo = [c for c in cells if s.image_id not in done.get(c.key, ())]
            if s.image_id in skipped or (not todo and s.image_id in known_originals):
                if on_image:
                    on_image()
                continue
            try:
                image = load_image(s.path)
                orig_record, orig_feats = analyse_original(image, self.backends, self.cache, groups)
            except StorageError:  # the disk or a file of the run, not the image: the run stops
                raise
            except (ImageLoadError, ValueError) as exc:  # about the image itself: final
                sink.skip(dataset, s.image_id, str(s.path), "original", getattr(exc, "reason", str(exc)))
            except Exception as exc:  # a backend crashing on one odd image must not end the run; retried
                sink.skip(dataset, s.image_id, str(s.path), RETRYABLE_STAGE, f"{type(exc).__name__}: {exc}")
            else:
                if s.image_id not in known_originals:
                    sink.put_original(dataset, s.image_id, s.identity, str(s.path), file_digest(s.path),
                                      {**orig_record,
                                       "features": {k: np.asarray(v).tolist() for k, v in orig_feats.items()}})
                faces = [face_from_json(f) for f in orig_record["faces"]]
                for c in todo:
                    self._run_cell(sink, self.method(c.method, c.eps), c, s, image, faces, orig_record, orig_feats)
            sink.commit()
            if on_image:
                on_image()

    def _run_cell(self, sink, method, c, s, image, faces, orig_record, orig_feats):
        t0 = time.perf_counter()
        try:
            with timing.model_call(f"method:{c.method}"):
                out = anonymise(method, image, faces, c.seed, c.store_dataset, c.method, c.eps, s.image_id)
        except StorageError:
            raise
        except Exception as exc:  # one image's failure is recorded (and retried by the next run), the run goes on
            sink.put_image(c.store_dataset, c.method, c.eps, c.seed, s.image_id, "failed",
                           f"{type(exc).__name__}: {exc}", {}, None)
            return
        sec = time.perf_counter() - t0
        target = out.target_landmarks[orig_record["primary"]] if out.target_landmarks else None
        # an attacker's gallery and training images: only what the recognizers measure
        groups = None if c.role == "probe" else ("reid",)
        record, feats = measure_anonymised(image, out.image, orig_record, orig_feats, target, self.backends,
                                           self.cache, groups)
        record["sec"] = sec
        record["identity"] = s.identity
        sink.put_image(c.store_dataset, c.method, c.eps, c.seed, s.image_id, "ok", "", record, feats)


def default_workers() -> int:
    """One per core, at most 4: each worker holds every model (~1.5 GiB)."""
    return max(1, min(os.cpu_count() or 1, 4))


def resolve_executor(name: str, workers: int, n_images: int, shard_size: int) -> str:
    """``auto``: a process pool when there are several workers and enough images to keep them busy
    (starting a worker loads every model, ~10 s), else this process."""
    if name != "auto":
        return name
    return "processes" if workers > 1 and n_images >= 4 * shard_size else "local"


def _state(store, dataset, samples, cells):
    done = {c.key: store.done_images(c.store_dataset, c.method, c.eps, c.seed) for c in cells}
    known = {s.image_id for s in samples if store.has_original(dataset, s.image_id)}
    skipped = {s.image_id for s in samples if store.is_skipped(dataset, s.image_id)}
    return done, known, skipped


def _reason_class(reason: str) -> str:
    """A skip reason with its numbers blanked: the same fault on different images reads the same."""
    return re.sub(r"\d+", "#", reason or "")[:200]


def check_health(store, dataset: str, samples, cells) -> None:
    """Raise :class:`RunFailed` when this run's images of ``dataset`` were all skipped, or when more
    than half were skipped (or failed in one method) for one reason that is not about the image."""
    n = len(samples)
    if not n:
        return
    ids = {s.image_id for s in samples}
    skips = [r for r in store.skipped(dataset) if r[1] in ids]
    measured = sum(1 for s in samples if store.has_original(dataset, s.image_id))
    if measured == 0:
        top = Counter(_reason_class(r[4]) for r in skips).most_common(3)
        raise RunFailed(f"{dataset}: no image measured, all {n} were skipped; reasons: "
                        + "; ".join(f"{k} x {r}" for r, k in top))
    errors = Counter(_reason_class(r[4]) for r in skips if r[3] == RETRYABLE_STAGE)
    if errors:
        reason, k = errors.most_common(1)[0]
        if k > n / 2:
            raise RunFailed(f"{dataset}: {k} of {n} images skipped for one reason that is not about the images: "
                            f"{reason}")
    keys = {(c.method, eps_key(c.eps), c.seed) for c in cells if c.store_dataset == dataset}
    failed = Counter((m, e, sd, _reason_class(r)) for m, e, sd, i, r in store.failures(dataset)
                     if (m, e, sd) in keys and i in ids)
    if failed:
        (m, e, sd, reason), k = failed.most_common(1)[0]
        if k > n / 2:
            raise RunFailed(f"{dataset}: method {m}" + (f" eps={e}" if e else "") + f" seed={sd} failed on {k} "
                            f"of {n} images: {reason}")


def run_local(worker: ImageWorker, store, dataset: str, samples, cells, bar) -> None:
    done, known, skipped = _state(store, dataset, samples, cells)
    try:
        worker.run(dataset, samples, cells, done, store, known, skipped, on_image=bar.update)
    except BaseException:  # interrupted, a full disk: drop the image in progress, release the write lock
        store.db.rollback()
        raise
    check_health(store, dataset, samples, cells)


def plan_tasks(store, dataset, samples, cells, shard_size: int, per_cell: bool) -> tuple[list, set, set]:
    """Tasks ``(cells, shard, done)`` still to run. ``per_cell``: one cell per task (Ray's cut:
    cells spread over a cluster); otherwise every cell of a shard of images in one task (each image
    decoded and analysed once, as in the local executor)."""
    done, known, skipped = _state(store, dataset, samples, cells)
    tasks = []
    for i in range(0, len(samples), shard_size):
        chunk = [s for s in samples[i: i + shard_size] if s.image_id not in skipped]
        groups = [[c] for c in cells] if per_cell else [cells]
        added = False
        for group in groups:
            todo = [s for s in chunk if any(s.image_id not in done[c.key] for c in group)]
            if todo:
                ids = {s.image_id for s in todo}
                tasks.append((group, todo, {c.key: done[c.key] & ids for c in group}))
                added = True
        missing = [s for s in chunk if s.image_id not in known]
        if missing and not added:  # every cell done but originals unrecorded: analyse them alone
            tasks.append(([], missing, {}))
    return tasks, known, skipped


def _drain(results, store, bar) -> None:
    for ops, t_snap, n_images in results:
        replay(ops, store)
        timing.merge(t_snap)
        bar.update(n_images)


def _task_result(worker: ImageWorker, dataset, cells, samples, done, known, skipped):
    timing.reset()
    sink = RecordingSink()
    worker.run(dataset, samples, cells, done, sink, known, skipped)
    return sink.ops, timing.snapshot(), len(samples)


# -- processes: a pool of worker processes on this machine (standard library) --------------------
_PROCESS_WORKER: ImageWorker | None = None


def _process_init(cfg, threads: int):
    global _PROCESS_WORKER
    _PROCESS_WORKER = ImageWorker(cfg, threads=threads)


def _process_task(dataset, cells, samples, done, known, skipped):
    return _task_result(_PROCESS_WORKER, dataset, cells, samples, done, known, skipped)


def run_processes(cfg, store, dataset: str, samples, cells, bar) -> None:
    """``workers`` processes of one thread each (dlib's models are single-threaded, so processes,
    not threads, fill the cores); image-major tasks of ``shard_size`` images."""
    from concurrent.futures import as_completed

    tasks, known, skipped = plan_tasks(store, dataset, samples, cells, cfg.shard_size, per_cell=False)
    bar.total = sum(len(t[1]) for t in tasks)
    if tasks:
        pool = spawn_pool(min(cfg.workers, len(tasks)), _process_init, (cfg, 1))
        try:
            futures = [pool.submit(_process_task, dataset, group, shard, done, known, skipped)
                       for group, shard, done in tasks]
            _drain((f.result() for f in as_completed(futures)), store, bar)
        except BaseException:  # interrupted, a full disk, a worker's fatal error: stop the workers now
            terminate(pool)
            raise
        pool.shutdown(wait=True)
    check_health(store, dataset, samples, cells)


# -- ray: a local or remote Ray cluster -----------------------------------------------------------
class _RayWorker(ImageWorker):
    """An actor: models loaded once, tasks return records instead of writing."""

    def __init__(self, cfg, threads: int = 1):
        super().__init__(cfg, threads=threads)

    def run_task(self, dataset, cells, samples, done, known, skipped):
        return _task_result(self, dataset, cells, samples, done, known, skipped)


def start_ray(address: str | None, workers: int):
    """Connect to ``address`` (``auto``, ``ray://host:port``) or start a local cluster of
    ``workers`` CPUs; workers inherit the feature cache location and one thread each."""
    import ray

    if not ray.is_initialized():
        env = {"KPDP_BENCH_CACHE": str(default_cache_dir()), "OMP_NUM_THREADS": "1"}
        kw = {"address": address} if address else {"num_cpus": workers, "include_dashboard": False}
        ray.init(runtime_env={"env_vars": env}, log_to_driver=False, **kw)
    return ray


def run_ray(cfg, store, dataset: str, samples, cells, bar) -> None:
    ray = start_ray(cfg.ray_address, cfg.workers)
    from ray.util import ActorPool

    tasks, known, skipped = plan_tasks(store, dataset, samples, cells, cfg.shard_size, per_cell=True)
    bar.total = sum(len(t[1]) for t in tasks)
    if not tasks:
        check_health(store, dataset, samples, cells)
        return
    Actor = ray.remote(num_cpus=1)(_RayWorker)
    actors = [Actor.remote(cfg) for _ in range(min(cfg.workers, len(tasks)))]
    pool = ActorPool(actors)
    submit = lambda actor, t: actor.run_task.remote(dataset, t[0], t[1], t[2], known, skipped)  # noqa: E731
    try:
        _drain(pool.map_unordered(submit, tasks), store, bar)
    finally:
        for actor in actors:
            ray.kill(actor)
    check_health(store, dataset, samples, cells)
