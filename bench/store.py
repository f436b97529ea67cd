"""The result store of one run directory: one SQLite file, written in transactions.

Tables:
  run(key, value)                     what produced the run: versions, seeds, weights' hashes, argv
  originals(dataset, image_id, ...)   faces found on each original (shared by every cell)
  skipped(dataset, image_id, path, stage, reason)
  images(dataset, method, eps, seed, image_id, status, reason, record, features)
                                      one row per anonymised image: per-backend results (JSON) and
                                      features (npz bytes); status 'ok' or 'failed'
  aggregates(dataset, method, eps, seed, metric, backend, value, n)
  cells(dataset, method, eps, seed, finished)

``eps`` is stored as text ('' for methods without ε) so that it can be part of primary keys.
A killed run loses at most the uncommitted batch; the primary keys make re-inserting idempotent.
"""
from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS originals (dataset TEXT, image_id TEXT, identity TEXT, path TEXT, digest TEXT,
    record TEXT, PRIMARY KEY (dataset, image_id));
CREATE TABLE IF NOT EXISTS skipped (dataset TEXT, image_id TEXT, path TEXT, stage TEXT, reason TEXT,
    PRIMARY KEY (dataset, image_id, stage));
CREATE TABLE IF NOT EXISTS images (dataset TEXT, method TEXT, eps TEXT, seed INTEGER, image_id TEXT,
    status TEXT, reason TEXT, record TEXT, features BLOB, PRIMARY KEY (dataset, method, eps, seed, image_id));
CREATE TABLE IF NOT EXISTS aggregates (dataset TEXT, method TEXT, eps TEXT, seed INTEGER, metric TEXT,
    backend TEXT, value REAL, n INTEGER, PRIMARY KEY (dataset, method, eps, seed, metric, backend));
CREATE TABLE IF NOT EXISTS cells (dataset TEXT, method TEXT, eps TEXT, seed INTEGER, finished INTEGER,
    PRIMARY KEY (dataset, method, eps, seed));
"""

CSV_COLUMNS = ["dataset", "method", "eps", "seed", "metric", "backend", "value", "n"]


def eps_key(eps: float | None) -> str:
    if eps is None:
        return ""
    return "inf" if eps == float("inf") else repr(float(eps))


def pack_features(features: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v, np.float32) for k, v in features.items()})
    return buf.getvalue()


def unpack_features(blob: bytes | None) -> dict[str, np.ndarray]:
    if not blob:
        return {}
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class ResultStore:
    def __init__(self, run_dir: Path | str):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "results.sqlite"
        self.db = sqlite3.connect(str(self.path), timeout=120)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.db.commit()

    # -- run metadata ---------------------------------------------------------------------------
    def set_meta(self, **items):
        with self.db:
            for k, v in items.items():
                self.db.execute("INSERT OR REPLACE INTO run VALUES (?, ?)", (k, json.dumps(v)))

    def meta(self) -> dict:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM run")}

    # -- originals ------------------------------------------------------------------------------
    def original(self, dataset: str, image_id: str) -> dict | None:
        row = self.db.execute("SELECT record FROM originals WHERE dataset=? AND image_id=?",
                              (dataset, image_id)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_original(self, dataset, image_id, identity, path, digest, record):
        self.db.execute("INSERT OR REPLACE INTO originals VALUES (?, ?, ?, ?, ?, ?)",
                        (dataset, image_id, identity, str(path), digest, json.dumps(record)))

    def skip(self, dataset, image_id, path, stage, reason):
        self.db.execute("INSERT OR REPLACE INTO skipped VALUES (?, ?, ?, ?, ?)",
                        (dataset, image_id, str(path), stage, reason))

    def skipped(self, dataset: str | None = None) -> list[tuple]:
        q = "SELECT dataset, image_id, path, stage, reason FROM skipped"
        return list(self.db.execute(q + (" WHERE dataset=?" if dataset else "") + " ORDER BY dataset, image_id",
                                    (dataset,) if dataset else ()))

    def is_skipped(self, dataset, image_id) -> bool:
        return self.db.execute("SELECT 1 FROM skipped WHERE dataset=? AND image_id=? AND stage='original'",
                               (dataset, image_id)).fetchone() is not None

    # -- per-image results ----------------------------------------------------------------------
    def done_images(self, dataset, method, eps, seed) -> set[str]:
        rows = self.db.execute("SELECT image_id FROM images WHERE dataset=? AND method=? AND eps=? AND seed=?",
                               (dataset, method, eps_key(eps), seed))
        return {r[0] for r in rows}

    def put_image(self, dataset, method, eps, seed, image_id, status, reason, record, features):
        self.db.execute("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (dataset, method, eps_key(eps), seed, image_id, status, reason, json.dumps(record),
                         pack_features(features) if features else None))

    def images(self, dataset, method, eps, seed):
        rows = self.db.execute("SELECT image_id, status, reason, record, features FROM images WHERE dataset=? AND "
                               "method=? AND eps=? AND seed=? ORDER BY image_id",
                               (dataset, method, eps_key(eps), seed))
        for image_id, status, reason, record, feats in rows:
            yield image_id, status, reason, json.loads(record), unpack_features(feats)

    def commit(self):
        self.db.commit()

    # -- aggregates -----------------------------------------------------------------------------
    def cell_finished(self, dataset, method, eps, seed) -> bool:
        row = self.db.execute("SELECT finished FROM cells WHERE dataset=? AND method=? AND eps=? AND seed=?",
                              (dataset, method, eps_key(eps), seed)).fetchone()
        return bool(row and row[0])

    def put_aggregates(self, dataset, method, eps, seed, rows: list[tuple[str, str, float, int]]):
        with self.db:
            self.db.execute("DELETE FROM aggregates WHERE dataset=? AND method=? AND eps=? AND seed=?",
                            (dataset, method, eps_key(eps), seed))
            self.db.executemany("INSERT INTO aggregates VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                [(dataset, method, eps_key(eps), seed, m, b, v, n) for m, b, v, n in rows])
            self.db.execute("INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, 1)",
                            (dataset, method, eps_key(eps), seed))

    def aggregates(self):
        import pandas as pd

        df = pd.read_sql_query("SELECT * FROM aggregates ORDER BY dataset, method, eps, seed, metric, backend", self.db)
        return df[CSV_COLUMNS]

    def close(self):
        self.db.commit()
        self.db.close()
