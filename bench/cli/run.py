"""``bench run``: the grid. Parsing and validation only; the work is :func:`bench.run.evaluate`.

Exit codes (also ``bench --help``): 0 done; 2 bad arguments (nothing written); 3 a backend's
weights are missing; 4 the run failed (it measured nothing, or most images failed for one reason
that is not about the image); 5 a storage fault (full disk, a damaged result store that cannot be
salvaged, an I/O error), the message names the file; 130 / 143 interrupted by SIGINT / SIGTERM.
After 4, 5, 130 and 143, what was committed is kept and the same command resumes.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

EXIT_BAD_ARGS, EXIT_BACKEND, EXIT_RUN_FAILED, EXIT_STORAGE = 2, 3, 4, 5


def _floats(text: str) -> list[float]:
    out = []
    for t in text.split(","):
        t = t.strip()
        try:
            out.append(float(t))
        except ValueError:
            raise ValueError(f"--eps: '{t}' is not a number (give a comma-separated list like 0.5,1,4)") from None
    return out


def _list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def with_method_args(methods: list[str], method_args: list[str]) -> list[str]:
    """``--method-args kpdp:postprocess=mean,...`` (repeatable): the parameters added to every
    spec of that method in ``--methods``.

    Example:
        >>> with_method_args(["kpdp", "blur"], ["kpdp:postprocess=mean,kpdp:residual=full"])
        ['kpdp[postprocess=mean,residual=full]', 'blur']
    """
    from bench.methods import format_spec, parse_spec

    extra: dict[str, list[str]] = {}
    for text in method_args:
        for item in (t.strip() for t in text.split(",") if t.strip()):
            name, colon, pair = item.partition(":")
            if not colon or "=" not in pair or not name.strip():
                raise ValueError(f"--method-args: '{item}' is not method:key=value")
            extra.setdefault(name.strip(), []).append(pair)
    names = {parse_spec(m)[0] for m in methods}
    for name in extra:
        if name not in names:
            raise ValueError(f"--method-args names '{name}', which is not in --methods")
    out = []
    for m in methods:
        name, params = parse_spec(m)
        if name in extra:
            added = parse_spec(f"{name}[{','.join(extra[name])}]")[1]
            both = sorted(set(params) & set(added))
            if both:
                raise ValueError(f"--method-args and --methods both set {', '.join(both)} of '{m}'")
            params = {**params, **added}
        out.append(format_spec(name, params))
    return out


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr, flush=True)


def _committed(out) -> str:
    """What the store of ``out`` holds, for the message of a stopped run."""
    from bench.store.results import committed_counts

    counts = committed_counts(out)
    if counts is None:
        return f"what was committed is in {out}/results.sqlite"
    m, n = counts
    return f"{m} originals and {n} anonymised images are committed in {out}/results.sqlite"


def cmd_run(a) -> int:
    """Run the grid; faults become an exit code and one message (see the module's docstring)."""
    from bench.run.executor import Interrupted, RunFailed, raise_on_signals, restore_signals
    from bench.store.cache import DiskFullError, StorageError, is_disk_full
    from bench.store.results import SQLiteError, StoreDamagedError

    previous = raise_on_signals()
    salvaged = False
    try:
        while True:
            try:
                return _cmd_run(a, salvage_first=not salvaged)
            except StoreDamagedError as exc:  # found while running: salvage once, then resume
                if salvaged:
                    raise
                _salvage(a.out, exc)
                salvaged = True
    except Interrupted as exc:
        restore_signals(previous)
        _err(f"interrupted ({exc.args[0]}): {_committed(a.out)}; run the same command to resume")
        return exc.exit_code
    except KeyboardInterrupt:
        restore_signals(previous)
        _err(f"interrupted: {_committed(a.out)}; run the same command to resume")
        return 130
    except RunFailed as exc:
        _err(f"the run failed: {exc}. What was measured is kept in {a.out}/results.sqlite; fix the cause and "
             "run the same command again (images that a backend or method failed on are retried)")
        return EXIT_RUN_FAILED
    except (DiskFullError, StoreDamagedError, StorageError) as exc:
        _err(str(exc))
        return EXIT_STORAGE
    except SQLiteError as exc:
        if is_disk_full(exc, Path(a.out) / "results.sqlite"):
            _err(f"no space left on the device while writing {a.out}/results.sqlite ({exc}); what was already "
                 "committed is kept: free some space and run the same command again to resume")
        else:
            _err(f"the result store {a.out}/results.sqlite: {exc}")
        return EXIT_STORAGE
    except OSError as exc:
        if is_disk_full(exc):
            _err(f"no space left on the device while writing {exc.filename or a.out} ({exc.strerror}); what was "
                 "already committed is kept: free some space and run the same command again to resume")
            return EXIT_STORAGE
        raise
    finally:
        restore_signals(previous)


def _salvage(out, exc) -> None:
    from bench.store.results import salvage

    print(f"warning: the result store {exc.path or out} is damaged ({getattr(exc, 'detail', exc)}): salvaging "
          "the rows that read back whole", file=sys.stderr, flush=True)
    salvage(out, log=lambda m: print(f"note: {m}", file=sys.stderr, flush=True))


def _cmd_run(a, salvage_first: bool) -> int:
    from pathlib import Path

    from bench.report.export import headline_table, text_table
    from bench.run.evaluate import DEFAULT_METRICS, ArgumentError, DatasetSpec, RunConfig, evaluate
    from bench.store.results import STORE_FILE, SQLiteError, check_store, damage_behind

    if salvage_first and (Path(a.out) / STORE_FILE).exists():
        problem = check_store(a.out)  # the StoreDamagedError, or None
        if problem:
            raise problem
    try:
        eps = _floats(a.eps)
        names = _list(a.datasets)
        roots = _list(a.root) if a.root else []
        splits = _list(a.split) if a.split else []
        if roots and len(roots) != len(names) or splits and len(splits) != len(names):
            raise ArgumentError("--root and --split take one value per data set of --datasets")
        datasets = [DatasetSpec(n, roots[i] if roots else None, splits[i] if splits else None)
                    for i, n in enumerate(names)]
        from bench.methods import split_specs

        methods = with_method_args(split_specs(a.methods), a.method_args or [])
        cfg = RunConfig(methods=methods, eps=eps, datasets=datasets,
                        metrics=_list(a.metrics) if a.metrics else list(DEFAULT_METRICS),
                        recognizers=_list(a.recognizers), detectors=_list(a.detectors),
                        seeds=[int(s) for s in _list(a.seeds)], limit=a.limit, device=a.device, out=a.out,
                        quiet=a.quiet, executor=a.executor, ray_address=a.ray_address, workers=a.workers,
                        shard_size=a.shard_size, attacker_train_images=a.attacker_train_images,
                        sanity_min_rank1=a.sanity_min_rank1, reaggregate=a.reaggregate)
        if a.attackers:
            cfg.attackers = _list(a.attackers)
        pixels = _pixel_attackers(cfg)  # they learn from the images: run on the store after the grid
        try:
            df = evaluate(cfg, argv=sys.argv)
            if pixels:
                from bench.attackers.semi_finetune import FinetuneConfig
                from bench.cli.recon import RECON_ATTACKERS, after_grid
                from bench.run.finetune import attack_run

                if set(pixels) - set(RECON_ATTACKERS):
                    attack_run(cfg.out, cfg=FinetuneConfig(device=cfg.device), log=print if not cfg.quiet else
                               (lambda m: None))
                after_grid(cfg.out, pixels, cfg.quiet)  # the reconstruction attackers, where named
                from bench.store.results import ResultStore

                store = ResultStore(cfg.out)
                df = store.aggregates()
                store.close()
        except (json.JSONDecodeError, SQLiteError) as exc:  # a row of the store that does not read back?
            damage = damage_behind(a.out, exc)
            if damage is not None:
                raise damage from exc
            raise
    except ArgumentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    print(text_table(headline_table(df, detector=cfg.detectors[0] if cfg.detectors else None)), end="")
    print(f"every metric, attacker and interval: {a.out}/summary.md, {a.out}/metrics.csv")
    return 0


def _pixel_attackers(cfg) -> list[str]:
    """Take the attackers that learn from the images (``pixels``) out of ``cfg.attackers``."""
    from bench.attackers import get_attacker

    pixels = []
    for name in list(cfg.attackers):
        try:
            if getattr(get_attacker(name), "pixels", False):
                pixels.append(name)
        except KeyError:
            pass  # an unknown name: evaluate() says so
    cfg.attackers = [n for n in cfg.attackers if n not in pixels]
    return pixels


def cmd_methods(a) -> int:
    from bench import methods as method_registry
    print("\n".join(method_registry.available()))
    return 0


def cmd_attackers(a) -> int:
    from bench.attackers import available, get_attacker

    for name in available():
        cls = get_attacker(name)
        doc = (cls.__doc__ or __import__(cls.__module__, fromlist=["x"]).__doc__ or "").strip().splitlines()
        print(f"{name:14s} gallery={cls.gallery:10s} trains={'yes' if cls.trains else 'no ':3s} "
              f"default={'yes' if cls.default else 'no'}  {doc[0] if doc else ''}")
    return 0


def add_commands(sub):
    from bench.run.executor import default_workers

    s = sub.add_parser("run", help="run methods x data sets x eps x seeds and measure every metric")
    s.add_argument("--methods", required=True,
                   help="comma-separated method specs: a registry name (see `bench methods`) or "
                   "name[key=value,...] setting parameters of the method's __init__, e.g. "
                   "'kpdp,kpdp[postprocess=mean],blur[sigma=3]'; values are int, float, inf, true/false or text; "
                   "each spec is one row of the results")
    s.add_argument("--method-args", action="append", metavar="METHOD:KEY=VALUE,...",
                   help="parameters for every spec of METHOD in --methods (repeatable): "
                   "--method-args kpdp:postprocess=mean,kpdp:residual=full turns kpdp into "
                   "kpdp[postprocess=mean,residual=full]")
    s.add_argument("--eps", default="1", help="comma-separated privacy budgets (methods without ε ignore it)")
    s.add_argument("--datasets", default="lfw-sample"), s.add_argument("--root"), s.add_argument("--split")
    s.add_argument("--metrics", help="comma-separated metric groups (default: every registered one: "
                   "reid, detection, fid, landmarks, background, expression, attributes, pose, diversity)")
    s.add_argument("--recognizers", default="dlib,facenet-casia"), s.add_argument("--detectors", default="mtcnn,dlib-hog")
    s.add_argument("--seeds", default="0"), s.add_argument("--limit", type=int)
    s.add_argument("--device", default="cpu"), s.add_argument("--out", default="runs/default")
    s.add_argument("--quiet", action="store_true")
    s.add_argument("--executor", default="auto", help="local (this process), processes (--workers processes "
                   "here), ray (cells x shards as Ray tasks); auto: processes when there are >1 workers and "
                   ">= 4 shards of images, else local")
    s.add_argument("--ray-address", help="Ray cluster to join (e.g. auto, ray://head:10001); default: start a local one")
    s.add_argument("--workers", type=int, default=default_workers(),
                   help="worker processes / Ray actors, one thread each (default: cores, at most 4)")
    s.add_argument("--shard-size", type=int, default=16, help="images per task (processes, ray)")
    s.add_argument("--attackers", help="comma-separated re-identification attackers (see `bench attackers`); "
                   "default: every attacker that runs here in reasonable time")
    s.add_argument("--attacker-train-images", type=int,
                   help="training images of attackers that adapt to the method (default: as many as evaluated)")
    s.add_argument("--sanity-min-rank1", type=float, default=0.9,
                   help="rank-1 every attacker must reach on the original images, else its rows are invalid")
    s.add_argument("--reaggregate", action="store_true",
                   help="recompute every cell's aggregates, also those whose images, settings and code are "
                        "unchanged since an earlier command into --out (which keep their rows by default)")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("attackers", help="list the registered re-identification attackers")
    s.set_defaults(func=cmd_attackers)

    from bench.run.finetune import add_commands as attack_commands

    attack_commands(sub)

    s = sub.add_parser("methods", help="list the registered anonymisation methods")
    s.set_defaults(func=cmd_methods)

    from bench.cli import report as report_cli

    report_cli.add_commands(sub)
    return sub
