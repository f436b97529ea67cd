"""``bench cache info`` and ``bench cache clear``: the shared feature cache (:mod:`bench.store.cache`)."""
from __future__ import annotations

import sqlite3
import sys


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def cmd_info(a) -> int:
    from bench.store.cache import FeatureCache, default_cache_path

    path = default_cache_path()
    print(f"path: {path}")
    if not path.exists():
        print("size: 0 B (no cache yet)")
        return 0
    try:
        cache = FeatureCache(path, check=False, heal=False)
        integrity = cache.integrity()
    except sqlite3.DatabaseError as exc:
        integrity = str(exc)
    if integrity != "ok":
        print(f"integrity: DAMAGED ({integrity}); the next run (or `bench cache clear`) moves it aside and "
              "starts an empty cache")
        return 0
    try:
        counts = cache.counts()
        print(f"size: {_size(cache.size_bytes())}")
        print(f"integrity: {integrity} (PRAGMA quick_check; each entry is also checked against its CRC-32 "
              "when read)")
        print(f"entries: {sum(n for n, _ in counts.values())}")
        kinds: dict[str, list[int]] = {}
        for (kind, _), (n, b) in counts.items():
            k = kinds.setdefault(kind, [0, 0])
            k[0] += n
            k[1] += b
        print("\nper kind:")
        print("| kind | entries | bytes |\n|---|---|---|")
        for kind, (n, b) in kinds.items():
            print(f"| {kind} | {n} | {_size(b)} |")
        print("\nper kind and version:")
        print("| kind | version | entries | bytes |\n|---|---|---|---|")
        for (kind, version), (n, b) in counts.items():
            v = version if a.full or len(version) <= 100 else version[:97] + "..."
            print(f"| {kind} | {v} | {n} | {_size(b)} |")
    finally:
        cache.close()
    return 0


def cmd_clear(a) -> int:
    from bench.store.cache import FeatureCache, default_cache_path

    path = default_cache_path()
    if not path.exists():
        print(f"{path}: no cache, nothing to clear")
        return 0
    cache = FeatureCache(path)
    try:
        kinds = sorted({k for k, _ in cache.counts()})
        if a.kind and a.kind not in kinds:
            print(f"error: no entries of kind '{a.kind}' in {path}; kinds present: {', '.join(kinds) or 'none'}",
                  file=sys.stderr)
            return 2
        n = cache.clear(a.kind)
        print(f"cleared {n} entries" + (f" of kind '{a.kind}'" if a.kind else "") + f" from {path} "
              f"(now {_size(cache.size_bytes())})")
        if not a.kind:  # damaged copies moved aside by earlier runs
            aside = sorted(path.parent.glob(path.name + ".damaged-*"))
            for f in aside:
                f.unlink()
            if aside:
                print(f"deleted {len(aside)} damaged cop{'y' if len(aside) == 1 else 'ies'} moved aside earlier")
    finally:
        cache.close()
    return 0


def add_commands(sub):
    s = sub.add_parser("cache", help="the shared feature cache ($KPDP_BENCH_CACHE or ~/.cache/kpdp-bench)")
    csub = s.add_subparsers(dest="cache_cmd", required=True)
    c = csub.add_parser("info", help="path, size, entries per kind and per version, integrity")
    c.add_argument("--full", action="store_true", help="print versions in full")
    c.set_defaults(func=cmd_info)
    c = csub.add_parser("clear", help="delete every entry, or those of one --kind")
    c.add_argument("--kind", help="e.g. original, anonymised, verify-embedding (see `bench cache info`)")
    c.set_defaults(func=cmd_clear)
    return sub
