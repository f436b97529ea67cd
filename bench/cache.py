"""A persistent cache of method-independent work (faces found on originals, landmarks, gallery
embeddings, Inception features), shared by runs and commands.

One SQLite file; keys are ``<kind>|<backend version>|<sha1 of the image file's bytes>``, so a
changed image or a new backend version never hits a stale entry. Values are ``.npy`` bytes
(``allow_pickle=False`` on read) or JSON for small records.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
from pathlib import Path

import numpy as np


def default_cache_dir() -> Path:
    return Path(os.environ.get("KPDP_BENCH_CACHE", Path.home() / ".cache" / "kpdp-bench"))


def file_digest(path: Path | str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class FeatureCache:
    def __init__(self, path: Path | str | None = None):
        path = Path(path) if path else default_cache_dir() / "features.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path), timeout=60, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value BLOB)")

    @staticmethod
    def key(kind: str, version: str, digest: str) -> str:
        return f"{kind}|{version}|{digest}"

    def get_array(self, key: str) -> np.ndarray | None:
        row = self.db.execute("SELECT value FROM cache WHERE key = ?", (key,)).fetchone()
        return None if row is None else np.load(io.BytesIO(row[0]), allow_pickle=False)

    def put_array(self, key: str, value: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, np.asarray(value), allow_pickle=False)
        self.db.execute("INSERT OR REPLACE INTO cache VALUES (?, ?)", (key, buf.getvalue()))

    def get_json(self, key: str):
        row = self.db.execute("SELECT value FROM cache WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_json(self, key: str, value) -> None:
        self.db.execute("INSERT OR REPLACE INTO cache VALUES (?, ?)", (key, json.dumps(value)))

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM cache").fetchone()[0]

    def close(self):
        self.db.close()
