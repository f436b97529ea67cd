"""``bench report`` and ``bench check``."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path


def cmd_report(a) -> int:
    from bench.report.page import ReportSpec, write_report
    from bench.report.spec import LabelError

    try:
        spec = ReportSpec.load(Path(a.spec)) if a.spec else ReportSpec()
        if a.label:
            labels = {**spec.method_labels, **dict(_label(t) for t in a.label)}
            spec = dataclasses.replace(spec, method_labels=labels)
    except ValueError as e:  # LabelError too
        print(f"error: {e}", file=sys.stderr)
        return 2
    runs = [Path(r) for r in (a.runs or spec.runs)]
    if not runs:
        print("error: give run directories (or a spec with `runs = [...]`)", file=sys.stderr)
        return 2
    for r in runs:
        if not (r / "metrics.csv").is_file():
            print(f"error: {r} has no metrics.csv (is it a `bench run --out` directory?)", file=sys.stderr)
            return 2
    samples_from = Path(a.samples_from) if a.samples_from else None
    if samples_from is not None and not (samples_from / "results.sqlite").is_file():
        print(f"error: --samples-from {samples_from} has no results.sqlite", file=sys.stderr)
        return 2
    try:
        index = write_report(runs, Path(a.out), spec, samples=not a.no_samples, samples_from=samples_from)
    except LabelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"report: {index}")
    return 0


def _label(text: str) -> tuple[str, str]:
    """``SPEC=NAME`` -> (SPEC, NAME); the last ``=`` splits, as a spec holds its own."""
    spec, sep, name = text.rpartition("=")
    if not sep or not spec or not name:
        raise ValueError(f"--label takes SPEC=NAME, e.g. 'kpdp[generator=v3]=kpdp v3'; got {text!r}")
    return spec, name


def cmd_check(a) -> int:
    from bench.report.check import check, make_baseline

    if a.write_baseline:
        import json

        Path(a.baseline).parent.mkdir(parents=True, exist_ok=True)
        Path(a.baseline).write_text(json.dumps(make_baseline(Path(a.run_dir)), indent=1) + "\n")
        print(f"baseline written: {a.baseline}")
        return 0
    ok, table = check(Path(a.run_dir), Path(a.baseline))
    moved = table[table.status != "ok"] if len(table) else table
    print(f"{len(table)} values compared, {len(moved)} moved")
    if len(moved):
        print(moved.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if len(table) and (table.status == "N_DIFFERS").any():
        print("note: N_DIFFERS: the run measured another number of images than the baseline; rerun it with the "
              "baseline's --limit/--split, or write a new baseline")
    print("PASS" if ok else "FAIL: privacy or utility regressed (see REGRESSED / MISSING / N_DIFFERS rows)")
    return 0 if ok else 1


def cmd_sheet(a) -> int:
    from bench import methods as method_registry
    from bench.report.samples import contact_sheet
    from kpdp.datasets import get_dataset

    eps = [float(e) for e in a.eps.split(",")]
    cells = []
    for m in method_registry.split_specs(a.methods):
        m = method_registry.check_spec(m)
        cells += [(m, e) for e in eps] if method_registry.uses_eps(m) else [(m, None)]
    ds = get_dataset(a.dataset, a.root, a.split)
    idx = [int(i) for i in a.index.split(",")]
    print(f"sheet: {contact_sheet(ds, idx, cells, Path(a.out), a.seed, a.device)}")
    return 0


def add_commands(sub):
    s = sub.add_parser("report", help="tables (md/csv/tex), figures, sample grid and index.html from runs")
    s.add_argument("runs", nargs="*"), s.add_argument("--out", required=True), s.add_argument("--spec")
    s.add_argument("--no-samples", action="store_true")
    s.add_argument("--label", action="append", metavar="SPEC=NAME",
                   help="show method SPEC as NAME in tables and figures (repeatable; the spec's [method_labels] do the "
                        "same); table.csv keeps the spec in its 'method spec' column")
    s.add_argument("--samples-from", metavar="RUN_DIR",
                   help="draw the sample grid from this run's store (when the report's runs are committed without "
                        "theirs: a short run over images they measured draws the same pixels, per-image seeds)")
    s.set_defaults(func=cmd_report)
    s = sub.add_parser("sheet", help="a contact sheet: faces x (method, eps), for a person to look at")
    s.add_argument("--methods",
                   default="blur,blur-strong,pixelate-8,pixelate-16,mask,mask-noise,dppix,deepprivacy,kpdp",
                   help="comma-separated method specs, as for `bench run`")
    s.add_argument("--eps", default="0.5,1,4"), s.add_argument("--dataset", default="lfw-sample")
    s.add_argument("--root"), s.add_argument("--split"), s.add_argument("--index", default="0")
    s.add_argument("--seed", type=int, default=0), s.add_argument("--device", default="cpu")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_sheet)
    s = sub.add_parser("check", help="regression gate against a committed baseline; exit 1 on regression")
    s.add_argument("run_dir"), s.add_argument("--baseline", required=True)
    s.add_argument("--write-baseline", action="store_true", help="write the baseline from this run instead")
    s.set_defaults(func=cmd_check)
    return sub
