"""``bench run``: the grid. Parsing and validation only; the work is :func:`bench.evaluate`."""
from __future__ import annotations

import sys


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


def cmd_run(a) -> int:
    from .evaluate import DEFAULT_METRICS, ArgumentError, DatasetSpec, RunConfig, evaluate
    from .export import markdown_table, wide_table

    try:
        eps = _floats(a.eps)
        names = _list(a.datasets)
        roots = _list(a.root) if a.root else []
        splits = _list(a.split) if a.split else []
        if roots and len(roots) != len(names) or splits and len(splits) != len(names):
            raise ArgumentError("--root and --split take one value per data set of --datasets")
        datasets = [DatasetSpec(n, roots[i] if roots else None, splits[i] if splits else None)
                    for i, n in enumerate(names)]
        cfg = RunConfig(methods=_list(a.methods), eps=eps, datasets=datasets,
                        metrics=_list(a.metrics) if a.metrics else list(DEFAULT_METRICS),
                        recognizers=_list(a.recognizers), detectors=_list(a.detectors),
                        seeds=[int(s) for s in _list(a.seeds)], limit=a.limit, device=a.device, out=a.out,
                        quiet=a.quiet, executor=a.executor, ray_address=a.ray_address, workers=a.workers,
                        shard_size=a.shard_size)
        df = evaluate(cfg, argv=sys.argv)
    except (ArgumentError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(wide_table(df)))
    print(f"results: {a.out}/metrics.csv, {a.out}/summary.md")
    return 0


def cmd_methods(a) -> int:
    from . import registry

    print("\n".join(registry.available()))
    return 0


def add_commands(sub):
    from .executor import default_workers

    s = sub.add_parser("run", help="run methods x data sets x eps x seeds and measure every metric")
    s.add_argument("--methods", required=True, help="comma-separated registry names (see `bench methods`)")
    s.add_argument("--eps", default="1", help="comma-separated privacy budgets (methods without ε ignore it)")
    s.add_argument("--datasets", default="lfw-sample"), s.add_argument("--root"), s.add_argument("--split")
    s.add_argument("--metrics", help="comma-separated groups: reid,detection,fid,landmarks,background")
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
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("methods", help="list the registered anonymisation methods")
    s.set_defaults(func=cmd_methods)

    from . import report_cli

    report_cli.add_commands(sub)
    return sub
