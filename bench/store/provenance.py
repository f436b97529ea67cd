"""What produced a run's numbers, for a report: package versions, seeds, the command, the code
version (git commit) that measured, the weights' hashes.

A run records them in its store (``results.sqlite``, table ``run``); a committed report keeps only
``run/metrics.csv`` and ``run/summary.md``, so ``bench report`` also writes what it read into
``provenance.json`` next to the report. Read back, a record is matched to a run by the SHA-256 of
its ``metrics.csv``: a record never describes other numbers than the ones it came with.
"""
from __future__ import annotations

import hashlib
import html
import json
import shlex
import sqlite3
import subprocess
from pathlib import Path

FILE = "provenance.json"
#: the fields of a record, with the label a report shows
FIELDS = {
    "commands": "commands into the run folder, in order (the last one aggregated the cells it ran)",
    "code_version": "code version (git commit) that measured",
    "versions": "package versions",
    "seeds": "seeds",
    "weights": "weights' hashes (recognizers, detectors, landmarks, Inception)",
    "method_versions": "method versions (generators' weights' hashes)",
    "metric_versions": "metric code versions",
    "attackers": "attackers of the last aggregation, per data set, with their sanity verdicts",
    "attacker_maps": "the linear map each adapting attacker fitted (cell/attacker/recognizer)",
    "datasets": "data sets",
    "limit": "images per data set (--limit)",
}
#: run-table keys that may hold the measuring code's git commit (runs before 2026-11-27 record none)
COMMIT_KEYS = ("git_commit", "code_version", "commit")
NOT_RECORDED = "not recorded"


def _commit(meta: dict) -> str | None:
    return next((meta[k] for k in COMMIT_KEYS if meta.get(k)), None)


def commands(meta: dict) -> list[dict]:
    """Every recorded command into a run folder, oldest first: ``{"argv", "git_commit", "at"}``.
    Stores written before the history was kept hold only their last ``argv``: that one alone."""
    history = meta.get("commands")
    if isinstance(history, list) and history:
        return history
    argv = meta.get("argv")
    return [{"argv": argv, "git_commit": _commit(meta), "at": None}] if argv else []


def append_command(store, argv) -> dict:
    """Add this command to the store's history (``bench run`` and ``bench attack`` both change a
    folder's numbers; a report built from several commands must name them all). Returns the entry."""
    import datetime

    entry = {"argv": [str(a) for a in argv], "git_commit": code_version(),
             "at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    store.set_meta(argv=entry["argv"], commands=[*commands(store.meta()), entry])
    return entry


def metrics_digest(run_dir: Path) -> str | None:
    f = Path(run_dir) / "metrics.csv"
    return hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else None


def from_meta(meta: dict) -> dict:
    """A record from a store's ``run`` table (values already JSON-decoded)."""
    backends = meta.get("backends") or {}
    methods = meta.get("methods") or {}
    return {
        "commands": commands(meta),
        "code_version": _commit(meta),
        "versions": meta.get("versions"),
        "seeds": meta.get("seeds"),
        "weights": {k: v for k, v in backends.items() if not k.startswith("metrics:")} or None,
        "method_versions": {d.get("spec", k.split("@")[0]): d.get("version") for k, d in methods.items()} or None,
        "metric_versions": meta.get("metric_versions"),
        # which attackers the strongest attack was the maximum over (a run aggregated before an
        # attacker existed may understate it)
        "attackers": {k.split(":", 1)[1]: (v or {}).get("verdicts") for k, v in meta.items()
                      if k.startswith("attacker_sanity:")} or None,
        "attacker_maps": {f"{k.split(':', 1)[1]}:{cell}": fit["map"] for k, v in meta.items()
                          if k.startswith("attacker_fits:") and isinstance(v, dict)
                          for cell, fit in v.items() if isinstance(fit, dict) and "map" in fit} or None,
        "datasets": meta.get("datasets"),
        "limit": meta.get("limit"),
    }


def from_store(run_dir: Path) -> dict | None:
    """The record in ``run_dir/results.sqlite``, read-only; None without a readable store."""
    store = Path(run_dir) / "results.sqlite"
    if not store.is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT key, value FROM run").fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return from_meta({k: _decode(v) for k, v in rows})


def _decode(v):
    try:
        return json.loads(v)
    except (TypeError, ValueError):
        return v


def from_saved(run_dir: Path, digest: str | None) -> dict | None:
    """The record for these numbers in a ``provenance.json`` of the run folder or of the report
    that holds it (``<report>/run/``), matched by the digest of ``metrics.csv``."""
    if digest is None:
        return None
    for f in (Path(run_dir) / FILE, Path(run_dir).parent / FILE):
        try:
            saved = json.loads(f.read_text()).get("runs", []) if f.is_file() else []
        except (OSError, ValueError, AttributeError):
            continue
        for r in saved:
            if isinstance(r, dict) and r.get("metrics_sha256") == digest:
                # a record saved before the history was kept has its last command as "command"
                legacy = {"commands": r.get("commands"), "argv": r.get("command"), "code_version": r.get("code_version")}
                return {**{k: r.get(k) for k in FIELDS}, "commands": commands(legacy),
                        "recorded_from": r.get("recorded_from") or r.get("run")}
    return None


def read(run_dir: Path) -> dict:
    """The provenance of one run directory: from its store when there is one, else from a saved
    ``provenance.json``; every field None that neither has."""
    digest = metrics_digest(run_dir)
    record = from_store(run_dir)
    if record is not None:
        record["recorded_from"] = str(run_dir)
    else:
        record = from_saved(run_dir, digest) or {**dict.fromkeys(FIELDS), "recorded_from": None}
    return {"run": str(run_dir), "metrics_sha256": digest, **record}


def code_version() -> str | None:
    """The git commit of this checkout of the code, '+dirty' when tracked files have changes; None
    outside a git checkout. ``bench run`` records it as ``git_commit`` (the code that measured);
    ``bench report`` shows its own beside it."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None


def write(out: Path, records: list[dict], report_version: str | None = None) -> Path:
    path = Path(out) / FILE
    path.write_text(json.dumps({"runs": records, "report_code_version": report_version}, indent=1) + "\n")
    return path


def command_text(argv) -> str:
    """``python -m bench run ...`` from a recorded argv (its first item is the entry point's path)."""
    if not argv:
        return NOT_RECORDED
    argv = list(argv)
    head = str(argv[0])
    if head.endswith(("bench/__main__.py", "/bench")) or head == "bench":
        argv = ["python", "-m", "bench", *argv[1:]]
    return shlex.join(str(a) for a in argv)


def _short(commit: str) -> str:
    return commit[:12] + ("+dirty" if commit.endswith("+dirty") else "")


def value_text(key: str, v) -> str:
    if v is None or v == {} or v == []:
        return NOT_RECORDED
    if key == "commands":
        return "\n".join(f"{i}. " + (f"{c['at']}, " if c.get("at") else "")
                         + (f"commit {_short(c['git_commit'])}: " if c.get("git_commit") else "")
                         + command_text(c.get("argv")) for i, c in enumerate(v, 1))
    if key == "datasets" and isinstance(v, list):
        return "; ".join(", ".join(f"{k} {x}" for k, x in d.items() if x not in (None, "")) if isinstance(d, dict)
                         else str(d) for d in v)
    if isinstance(v, dict):
        def item(k, x):
            if isinstance(x, dict):  # e.g. attackers: {data set: {attacker: verdict}}
                return f"{k}: " + ", ".join(f"{a} {b}" for a, b in x.items())
            return f"{k} {NOT_RECORDED if x is None else x}"
        return "; ".join(item(k, x) for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(str(x) for x in v)
    return str(v)


def to_html(records: list[dict], report_version: str | None = None) -> str:
    parts = ["<h2 id='provenance'>Provenance</h2><p>What produced the numbers, as each run recorded it "
             f"(<a href='{FILE}'>{FILE}</a>). Every command into a run folder is listed, oldest first; a run "
             "recorded before 2026-11-27 kept only its last one.</p>"]
    for r in records:
        source = r.get("recorded_from")
        rows = "".join(f"<tr><th>{html.escape(label)}</th>"
                       f"<td>{html.escape(value_text(k, r.get(k))).replace(chr(10), '<br>')}</td></tr>"
                       for k, label in FIELDS.items())
        source = source or "nothing: the run folder has no results.sqlite, and no provenance.json holds these numbers"
        parts.append(f"<h3>{html.escape(r['run'])}</h3><p>Read from: {html.escape(source)}; "
                     f"metrics.csv SHA-256 {html.escape(r.get('metrics_sha256') or NOT_RECORDED)}</p>"
                     f"<table class='prov'>{rows}</table>")
    parts.append(f"<p>This page was made by the code at {html.escape(report_version or NOT_RECORDED)} "
                 "(not necessarily the code that measured).</p>")
    return "".join(parts)
