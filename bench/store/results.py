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

Faults: the file is checked on open (``PRAGMA quick_check``); a damaged store raises
:class:`StoreDamagedError`, which names the file and what to do, and so does a row that no longer
reads back whole (SQLite's "malformed", JSON that does not parse, features whose zip CRC fails).
:func:`salvage` copies every row that reads back whole into a fresh file and moves the damaged one
aside (``bench run`` does this itself, then recomputes what was lost). A full disk raises
:class:`bench.store.cache.DiskFullError` naming the file; the open transaction is rolled back, every
committed row stays. Skips of stage ``original`` are about the image (unreadable, no face) and are
final; skips of stage ``original-error`` (a backend raised) are retried by the next run.

Only this module runs SQL on the file. Commands that must not write into a run (a report, the
message of a stopped run) read it through :class:`StoreReader`, which opens it read-only.
"""
from __future__ import annotations

import io
import json
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bench.metrics.registry import Row, all_metrics
from bench.store.cache import StorageError, disk_full, is_corrupt, is_disk_full

#: the roles of a data set's images and the suffix of the name each is stored under
ROLES = {"probe": "", "gallery": "#gallery", "train": "#attacker-train"}


def store_dataset(dataset: str, role: str) -> str:
    """The name ``dataset``'s images of one role are stored under (:attr:`Cell.store_dataset`).

    Example:
        >>> store_dataset("lfw", "probe"), store_dataset("lfw", "train")
        ('lfw', 'lfw#attacker-train')
    """
    return dataset + ROLES[role]


def store_datasets(dataset: str) -> list[str]:
    """The names a data set's images are stored under, one per role."""
    return [store_dataset(dataset, role) for role in ROLES]


STORE_FILE = "results.sqlite"
RETRYABLE_STAGE = "original-error"  # a backend raised on this image: the next run tries it again


class StoreDamagedError(StorageError):
    """The result store's file is damaged (detected on open or on a read); ``detail`` says how."""

    def __init__(self, message: str, path=None, detail: str | None = None):
        super().__init__(message, path)
        self.detail = detail or message


#: SQLite's own error, where the store passes it on untranslated (reads outside ``_guard``): callers
#: that turn it into a message catch it by this name, so that no module but this one needs the driver
SQLiteError = sqlite3.Error


SCHEMA = """
CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS originals (dataset TEXT, image_id TEXT, identity TEXT, path TEXT, digest TEXT,
    record TEXT, PRIMARY KEY (dataset, image_id));
CREATE TABLE IF NOT EXISTS skipped (dataset TEXT, image_id TEXT, path TEXT, stage TEXT, reason TEXT,
    PRIMARY KEY (dataset, image_id, stage));
CREATE TABLE IF NOT EXISTS images (dataset TEXT, method TEXT, eps TEXT, seed INTEGER, image_id TEXT,
    status TEXT, reason TEXT, record TEXT, features BLOB, PRIMARY KEY (dataset, method, eps, seed, image_id));
CREATE TABLE IF NOT EXISTS aggregates (dataset TEXT, method TEXT, eps TEXT, seed INTEGER, metric TEXT,
    backend TEXT, value REAL, n INTEGER, ci_low REAL, ci_high REAL, attacker TEXT NOT NULL DEFAULT '',
    valid INTEGER NOT NULL DEFAULT 1, PRIMARY KEY (dataset, method, eps, seed, metric, backend, attacker));
CREATE TABLE IF NOT EXISTS cells (dataset TEXT, method TEXT, eps TEXT, seed INTEGER, finished INTEGER,
    PRIMARY KEY (dataset, method, eps, seed));
CREATE TABLE IF NOT EXISTS attack_outcomes (dataset TEXT, method TEXT, eps TEXT, seed INTEGER, attacker TEXT,
    outcomes BLOB, PRIMARY KEY (dataset, method, eps, seed, attacker));
"""

# a public interface: columns are only ever appended (readers select by name)
CSV_COLUMNS = ["dataset", "method", "eps", "seed", "metric", "backend", "value", "n", "ci_low", "ci_high", "attacker",
               "valid"]
#: the key of one aggregate (``attacker`` is empty for metrics that involve no attacker)
ROW_KEY = ["dataset", "method", "eps", "seed", "metric", "backend", "attacker"]


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


def pack_outcomes(by_recognizer: dict[str, dict[str, np.ndarray]]) -> bytes:
    """{recognizer: {metric: per-probe outcomes}} as one npz blob (keys ``recognizer|metric``)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{f"{rec}|{m}": np.asarray(v) for rec, hits in by_recognizer.items()
                                for m, v in hits.items()})
    return buf.getvalue()


def unpack_outcomes(blob: bytes) -> dict[str, dict[str, np.ndarray]]:
    """The inverse of :func:`pack_outcomes`.

    >>> unpack_outcomes(pack_outcomes({"dlib": {"reid_rank1": np.array([True, False])}}))["dlib"]["reid_rank1"]
    array([ True, False])
    """
    out: dict = {}
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        for k in z.files:
            rec, m = k.split("|", 1)
            out.setdefault(rec, {})[m] = z[k]
    return out


def damaged_message(path: Path, detail) -> str:
    return (f"the result store {path} is damaged ({detail}). Run the same `bench run ... --out {path.parent}` "
            f"command to salvage it (rows that read back whole are kept, the damaged file is moved aside and "
            f"the rest is recomputed), or move {path} away to start that run afresh")


class ResultStore:
    def __init__(self, run_dir: Path | str, check: bool = True):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / STORE_FILE
        self.db = None
        try:
            with self._guard():
                self.db = sqlite3.connect(str(self.path), timeout=120)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                if check:
                    problems = integrity(self.db)
                    if problems != "ok":
                        raise StoreDamagedError(damaged_message(self.path, f"quick_check: {problems}"), self.path,
                                                f"quick_check: {problems}")
                self.db.executescript(SCHEMA)
                self.db.commit()
        except StorageError:
            if getattr(self, "db", None) is not None:
                self.db.close()
            raise

    @contextmanager
    def _guard(self):
        """SQLite's faults as the store's: damage -> StoreDamagedError, full disk -> DiskFullError."""
        try:
            yield
        except sqlite3.Error as exc:
            if is_disk_full(exc, self.path):
                self._rollback()
                raise disk_full(self.path, exc) from exc
            if is_corrupt(exc):
                raise StoreDamagedError(damaged_message(self.path, exc), self.path, str(exc)) from exc
            raise
        except OSError as exc:
            if is_disk_full(exc):
                self._rollback()
                raise disk_full(self.path, exc) from exc
            raise

    def _rollback(self):
        try:
            if self.db is not None:
                self.db.rollback()
        except sqlite3.Error:
            pass

    def _decode(self, what: str, fn, *args):
        try:
            return fn(*args)
        except (ValueError, OSError, EOFError, KeyError) as exc:  # JSON / npz that does not read back whole
            detail = f"{what} does not read back: {exc}"
            raise StoreDamagedError(damaged_message(self.path, detail), self.path, detail) from exc

    # -- run metadata ---------------------------------------------------------------------------
    def set_meta(self, **items):
        with self._guard(), self.db:
            for k, v in items.items():
                self.db.execute("INSERT OR REPLACE INTO run VALUES (?, ?)", (k, json.dumps(v)))

    def meta(self) -> dict:
        with self._guard():
            rows = self.db.execute("SELECT key, value FROM run").fetchall()
        return {k: self._decode(f"run[{k}]", json.loads, v) for k, v in rows}

    # -- originals ------------------------------------------------------------------------------
    def original(self, dataset: str, image_id: str) -> dict | None:
        with self._guard():
            row = self.db.execute("SELECT record FROM originals WHERE dataset=? AND image_id=?",
                                  (dataset, image_id)).fetchone()
        return None if row is None else self._decode(f"originals[{dataset}/{image_id}]", json.loads, row[0])

    def has_original(self, dataset: str, image_id: str) -> bool:
        with self._guard():
            return self.db.execute("SELECT 1 FROM originals WHERE dataset=? AND image_id=?",
                                   (dataset, image_id)).fetchone() is not None

    def original_records(self, dataset: str):
        """(image_id, identity, record) of every original of ``dataset`` in image-id order, parsed one at
        a time; a record that does not read back raises :class:`StoreDamagedError`."""
        with self._guard():
            cur = self.db.execute("SELECT image_id, identity, record FROM originals WHERE dataset=? "
                                  "ORDER BY image_id", (dataset,))
            for image_id, identity, record in cur:
                yield image_id, identity, self._decode(f"originals[{dataset}/{image_id}]", json.loads, record)

    # The *_as_stored readers give a row's bytes unparsed, for digests of what a cell was computed
    # from (bench.aggregate.fingerprint): a record damaged since changes the digest instead of
    # raising here. They pass SQLite's errors on untranslated: bench run's full read
    # (damage_behind) decides whether an error is damage to salvage or a fault to report.
    def originals_as_stored(self, dataset: str):
        """(image_id, digest, record JSON text) of every original of ``dataset``, in image-id order."""
        yield from self.db.execute("SELECT image_id, digest, record FROM originals WHERE dataset=? "
                                   "ORDER BY image_id", (dataset,))

    def original_samples(self, dataset: str):
        """(image_id, identity, path, record JSON text) of every original of ``dataset``, in image-id order."""
        yield from self.db.execute("SELECT image_id, identity, path, record FROM originals WHERE dataset=? "
                                   "ORDER BY image_id", (dataset,))

    def put_original(self, dataset, image_id, identity, path, digest, record):
        with self._guard():
            self.db.execute("INSERT OR REPLACE INTO originals VALUES (?, ?, ?, ?, ?, ?)",
                            (dataset, image_id, identity, str(path), digest, json.dumps(record)))
            self.db.execute("DELETE FROM skipped WHERE dataset=? AND image_id=? AND stage=?",
                            (dataset, image_id, RETRYABLE_STAGE))

    def skip(self, dataset, image_id, path, stage, reason):
        with self._guard():
            self.db.execute("INSERT OR REPLACE INTO skipped VALUES (?, ?, ?, ?, ?)",
                            (dataset, image_id, str(path), stage, reason))

    def skipped(self, dataset: str | None = None) -> list[tuple]:
        q = "SELECT dataset, image_id, path, stage, reason FROM skipped"
        with self._guard():
            return list(self.db.execute(q + (" WHERE dataset=?" if dataset else "") + " ORDER BY dataset, image_id",
                                        (dataset,) if dataset else ()))

    def skip_reasons_as_stored(self, dataset: str):
        """(image_id, stage, reason) of every skip of ``dataset``, in (image id, stage) order."""
        yield from self.db.execute("SELECT image_id, stage, reason FROM skipped WHERE dataset=? "
                                   "ORDER BY image_id, stage", (dataset,))

    def is_skipped(self, dataset, image_id) -> bool:
        """Skipped for a reason about the image itself (final); a backend error is retried."""
        with self._guard():
            return self.db.execute("SELECT 1 FROM skipped WHERE dataset=? AND image_id=? AND stage='original'",
                                   (dataset, image_id)).fetchone() is not None

    # -- per-image results ----------------------------------------------------------------------
    def done_images(self, dataset, method, eps, seed) -> set[str]:
        """Images measured in this cell; an image whose method failed is tried again by the next run."""
        with self._guard():
            rows = self.db.execute("SELECT image_id FROM images WHERE dataset=? AND method=? AND eps=? AND seed=? "
                                   "AND status='ok'", (dataset, method, eps_key(eps), seed)).fetchall()
        return {r[0] for r in rows}

    def put_image(self, dataset, method, eps, seed, image_id, status, reason, record, features):
        with self._guard():
            self.db.execute("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (dataset, method, eps_key(eps), seed, image_id, status, reason, json.dumps(record),
                             pack_features(features) if features else None))

    def images(self, dataset, method, eps, seed):
        with self._guard():
            rows = self.db.execute("SELECT image_id, status, reason, record, features FROM images WHERE dataset=? "
                                   "AND method=? AND eps=? AND seed=? ORDER BY image_id",
                                   (dataset, method, eps_key(eps), seed))
            for image_id, status, reason, record, feats in rows:
                where = f"images[{dataset}/{method}/{eps_key(eps)}/{seed}/{image_id}]"
                yield (image_id, status, reason, self._decode(where, json.loads, record),
                       self._decode(where, unpack_features, feats))

    def images_as_stored(self, dataset: str, method: str, eps):
        """(seed, image_id, status, record JSON text, features npz bytes or None) of every image of
        ``method`` at ``eps`` on ``dataset``, all seeds, in (seed, image id) order; one row at a time
        (a cell's features are megabytes)."""
        yield from self.db.execute("SELECT seed, image_id, status, record, features FROM images "
                                   "WHERE dataset=? AND method=? AND eps=? ORDER BY seed, image_id",
                                   (dataset, method, eps_key(eps)))

    def failures(self, dataset) -> list[tuple]:
        """(method, eps, seed, image_id, reason) of every image whose method failed."""
        with self._guard():
            return self.db.execute("SELECT method, eps, seed, image_id, reason FROM images WHERE dataset=? AND "
                                   "status='failed' ORDER BY method, eps, seed, image_id", (dataset,)).fetchall()

    def commit(self):
        with self._guard():
            self.db.commit()

    # -- aggregates -----------------------------------------------------------------------------
    def cell_finished(self, dataset, method, eps, seed) -> bool:
        with self._guard():
            row = self.db.execute("SELECT finished FROM cells WHERE dataset=? AND method=? AND eps=? AND seed=?",
                                  (dataset, method, eps_key(eps), seed)).fetchone()
        return bool(row and row[0])

    def cell_aggregates(self, dataset, method, eps, seed) -> list[Row]:
        """The stored aggregate rows of one cell, in the store's order (NULL values and intervals as
        NaN); [] when the cell has none. SQLite's errors pass on untranslated, as :meth:`images_as_stored`."""
        rows = self.db.execute("SELECT metric, backend, value, n, ci_low, ci_high, attacker, valid FROM aggregates "
                               "WHERE dataset=? AND method=? AND eps=? AND seed=?",
                               (dataset, method, eps_key(eps), seed)).fetchall()
        nan = float("nan")
        return [Row(m, b, nan if v is None else v, n, nan if lo is None else lo, nan if hi is None else hi, a,
                    bool(ok)) for m, b, v, n, lo, hi, a, ok in rows]

    def attackers_with(self, dataset: str, metric: str) -> set[str]:
        """Every attacker that any cell of ``dataset`` has a ``metric`` row of ('' for none)."""
        return {a for (a,) in self.db.execute("SELECT DISTINCT attacker FROM aggregates WHERE dataset=? AND metric=?",
                                              (dataset, metric))}

    def stored_attackers(self, dataset, method, eps, seed) -> set[str]:
        """The attackers that one cell's stored aggregates name ('' for rows of no attacker)."""
        return {a for (a,) in self.db.execute("SELECT DISTINCT attacker FROM aggregates WHERE dataset=? AND "
                                              "method=? AND eps=? AND seed=?",
                                              (dataset, method, eps_key(eps), seed))}

    # -- per-probe outcomes of the attacks that need pixels (passes after the grid) --------------
    def put_attack_outcomes(self, dataset, method, eps, seed, attacker: str, by_recognizer: dict) -> None:
        """One pixel attacker's per-probe outcomes on one cell ({recognizer: {metric: array}}), kept
        so that a later pass's strongest attack counts them (the grid's attackers are recomputed
        from the stored embeddings instead)."""
        with self._guard():
            self.db.execute("INSERT OR REPLACE INTO attack_outcomes VALUES (?,?,?,?,?,?)",
                            (dataset, method, eps_key(eps), seed, attacker, pack_outcomes(by_recognizer)))
            self.db.commit()

    def attack_outcomes(self, dataset, method, eps, seed) -> dict[str, dict[str, dict[str, np.ndarray]]]:
        """{attacker: {recognizer: {metric: per-probe outcomes}}} stored for one cell."""
        rows = self.db.execute("SELECT attacker, outcomes FROM attack_outcomes WHERE dataset=? AND method=? AND "
                               "eps=? AND seed=?", (dataset, method, eps_key(eps), seed)).fetchall()
        return {a: self._decode("attack outcomes", unpack_outcomes, blob) for a, blob in rows}

    def _aggregate_columns(self) -> None:
        """Stores written before attackers existed key aggregates without ``attacker``: rebuild the
        table in the current schema (aggregates are recomputed from the per-image records at the
        end of every run; the old re-identification rows were the ignorant attacker's)."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(aggregates)")}
        if "attacker" in have:
            return

        privacy = [m.name for m in all_metrics().values() if m.privacy]
        ci = "ci_low, ci_high" if "ci_low" in have else "NULL, NULL"
        self.db.execute("ALTER TABLE aggregates RENAME TO aggregates_v1")
        self.db.executescript(SCHEMA)
        self.db.execute(f"INSERT INTO aggregates SELECT dataset, method, eps, seed, metric, backend, value, n, {ci}, "
                        f"CASE WHEN metric IN ({','.join('?' * len(privacy))}) THEN 'ignorant' ELSE '' END, 1 "
                        "FROM aggregates_v1", privacy)
        self.db.execute("DROP TABLE aggregates_v1")

    def put_aggregates(self, dataset, method, eps, seed, rows):
        """``rows``: :class:`bench.metrics.registry.Row` (or plain (metric, backend, value, n) tuples)."""
        def field(r, i, default):
            return r[i] if len(r) > i else default

        def real(x):
            return None if (x is None or x != x) else float(x)

        with self.db:
            self._aggregate_columns()
            self.db.execute("DELETE FROM aggregates WHERE dataset=? AND method=? AND eps=? AND seed=?",
                            (dataset, method, eps_key(eps), seed))
            self.db.executemany("INSERT INTO aggregates (dataset, method, eps, seed, metric, backend, value, n, "
                                "ci_low, ci_high, attacker, valid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                [(dataset, method, eps_key(eps), seed, *r[:4], real(field(r, 4, None)),
                                  real(field(r, 5, None)), field(r, 6, ""), int(bool(field(r, 7, True))))
                                 for r in rows])
            self.db.execute("INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, 1)",
                            (dataset, method, eps_key(eps), seed))

    def aggregates(self):
        import pandas as pd

        with self.db:
            self._aggregate_columns()
        df = pd.read_sql_query("SELECT * FROM aggregates ORDER BY dataset, method, eps, seed, metric, backend, attacker",
                               self.db)
        return df[CSV_COLUMNS]

    def close(self):
        try:
            self.commit()
        finally:
            self.db.close()


# -- read-only access --------------------------------------------------------------------------------
class StoreReader:
    """A run's store opened read-only (SQLite's ``mode=ro``): a report, or the message of a stopped
    run, never writes into a run, not even the schema or a journal mode (SQLite may leave its WAL
    index, ``-shm``, and an empty ``-wal`` beside the file). Opening a missing file raises
    :data:`SQLiteError` (nothing is created); so does any attempt to write.

    Unlike :class:`ResultStore` it takes ``eps`` as stored (the text :meth:`measured_cells` gives)
    and passes SQLite's errors on untranslated. Use it as a context manager, or :meth:`close` it.
    """

    def __init__(self, run_dir: Path | str, timeout: float = 5.0):
        self.path = Path(run_dir) / STORE_FILE
        self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=timeout)

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def run_value(self, key: str, default=None):
        """The parsed value of one ``run`` entry (what produced the run), or ``default``."""
        row = self.db.execute("SELECT value FROM run WHERE key=?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def measured_cells(self, seed: int) -> list[tuple[str, str, str]]:
        """(dataset, method, stored ε) of every cell with a measured image at ``seed``, in (method, ε)
        order (``original`` included)."""
        return self.db.execute("SELECT DISTINCT dataset, method, eps FROM images WHERE status='ok' AND seed=? "
                               "ORDER BY method, eps", (seed,)).fetchall()

    def originals(self) -> list[tuple[str, str, str, str]]:
        """(dataset, image_id, path, record JSON text) of every original of every data set, in image-id
        order; records unparsed, since callers pick a few."""
        return self.db.execute("SELECT dataset, image_id, path, record FROM originals ORDER BY image_id").fetchall()

    def measured_record(self, dataset: str, method: str, eps: str, seed: int, image_id: str) -> dict | None:
        """The parsed record of one image measured in a cell (``eps`` as stored), or None when that
        image was not measured there (absent or failed)."""
        row = self.db.execute("SELECT record FROM images WHERE dataset=? AND method=? AND eps=? AND seed=? AND "
                              "image_id=? AND status='ok'", (dataset, method, eps, seed, image_id)).fetchone()
        return None if row is None else json.loads(row[0])

    def committed_counts(self) -> tuple[int, int]:
        """(originals, measured images) committed: rows of ``originals``, and of ``images`` with status ok."""
        n = self.db.execute("SELECT COUNT(*) FROM images WHERE status='ok'").fetchone()[0]
        m = self.db.execute("SELECT COUNT(*) FROM originals").fetchone()[0]
        return m, n

    def finds_damage(self) -> bool:
        """Does a full read find damage: ``PRAGMA quick_check`` fails, a row does not read back whole
        (JSON, features), a row cannot be read at all, or SQLite calls the file malformed?"""
        try:
            if self.db.execute("PRAGMA quick_check(1)").fetchone()[0] != "ok":
                return True
            for table in SALVAGED_TABLES:
                cols = [r[1] for r in self.db.execute(f'PRAGMA table_info("{table}")')]
                lost = [0]
                for row in _read_rows(self.db, table, cols, lost):
                    if not _valid_row(table, cols, row):
                        return True
                if lost[0]:
                    return True
        except sqlite3.DatabaseError:
            return True
        return False


def committed_counts(run_dir: Path | str) -> tuple[int, int] | None:
    """(originals, measured images) committed in ``run_dir``'s store, read-only; None when it cannot
    be read (missing, locked past a few seconds, damaged)."""
    try:
        with StoreReader(run_dir, timeout=5) as reader:
            return reader.committed_counts()
    except sqlite3.Error:
        return None


def full_read_finds_damage(run_dir: Path | str) -> bool:
    """Does a full read-only read of ``run_dir``'s store find damage (:meth:`StoreReader.finds_damage`)?
    False when there is no store to open."""
    try:
        reader = StoreReader(run_dir, timeout=30)
    except sqlite3.Error:
        return False
    with reader:
        return reader.finds_damage()


def damage_behind(run_dir: Path | str, exc: BaseException) -> StoreDamagedError | None:
    """The :class:`StoreDamagedError` that an error escaping a run stands for, or None (then re-raise
    ``exc``): JSON that does not parse, or SQLite's "malformed" (:func:`is_corrupt`), when a full read
    of the store confirms rows that do not read back."""
    if not (isinstance(exc, json.JSONDecodeError) or (isinstance(exc, sqlite3.DatabaseError) and is_corrupt(exc))):
        return None
    if not full_read_finds_damage(run_dir):
        return None
    path = Path(run_dir) / STORE_FILE
    return StoreDamagedError(f"the result store {run_dir}/{STORE_FILE} has rows that do not read back ({exc})",
                             path, f"rows that do not read back: {exc}")


# -- integrity and salvage --------------------------------------------------------------------------
def integrity(db: sqlite3.Connection) -> str:
    """``ok`` or the first problems ``PRAGMA quick_check`` reports (raises sqlite3.DatabaseError when
    SQLite cannot even read the schema)."""
    rows = [r[0] for r in db.execute("PRAGMA quick_check(3)")]
    return "ok" if rows == ["ok"] else " ".join(" ".join(rows).replace("*** in database main ***", "").split())


def check_store(run_dir: Path | str) -> StoreDamagedError | None:
    """None if ``run_dir`` holds no store or a sound one, else the error that says what is wrong."""
    path = Path(run_dir) / STORE_FILE
    if not path.exists():
        return None
    try:
        ResultStore(run_dir).close()
    except StoreDamagedError as exc:
        return exc
    return None


def _valid_row(table: str, cols: list[str], row: tuple) -> bool:
    """Does a row read back whole: its JSON parses, its features unpack (zip CRCs)."""
    try:
        for c, v in zip(cols, row):
            if (table, c) in (("run", "value"), ("originals", "record"), ("images", "record")):
                json.loads(v)
            elif (table, c) == ("images", "features"):
                unpack_features(v)
            elif (table, c) == ("attack_outcomes", "outcomes"):
                unpack_outcomes(v)
        return True
    except Exception:  # noqa: BLE001  (any failure to decode = not whole)
        return False


def _read_rows(db: sqlite3.Connection, table: str, cols: list[str], lost: list, chunk: int = 256):
    """Yield the rows of ``table`` that SQLite can still read, in rowid order, probing row by row
    across damaged pages; unreadable rowids are counted in ``lost[0]``."""
    sel = ", ".join(f'"{c}"' for c in cols)
    try:
        hi = db.execute(f'SELECT max(rowid) FROM "{table}"').fetchone()[0] or 0
    except sqlite3.DatabaseError:
        hi = None
    lo, empty = 0, 0
    while (hi is None and empty < 64) or (hi is not None and lo < hi):
        try:
            rows = db.execute(f'SELECT rowid, {sel} FROM "{table}" WHERE rowid > ? AND rowid <= ? ORDER BY rowid',
                              (lo, lo + chunk)).fetchall()
        except sqlite3.DatabaseError:
            rows = []
            for rid in range(lo + 1, lo + chunk + 1):
                try:
                    rows += db.execute(f'SELECT rowid, {sel} FROM "{table}" WHERE rowid = ?', (rid,)).fetchall()
                except sqlite3.DatabaseError:
                    lost[0] += 1
        empty = 0 if rows else empty + 1
        for r in rows:
            yield r[1:]
        lo += chunk


SALVAGED_TABLES = ("run", "originals", "skipped", "images", "aggregates", "cells", "attack_outcomes")


def salvage(run_dir: Path | str, log=print) -> dict[str, tuple[int, int]]:
    """Copy every row of a damaged store that reads back whole into a fresh store; the damaged file is
    moved aside to ``results.sqlite.damaged-<time>``. Returns {table: (rows kept, rows dropped)}.
    Raises :class:`StoreDamagedError` when not even the schema can be read."""
    run_dir = Path(run_dir)
    path = run_dir / STORE_FILE
    tmp = run_dir / (STORE_FILE + ".salvage")
    for p in (tmp, Path(str(tmp) + "-wal"), Path(str(tmp) + "-shm")):
        if p.exists():
            p.unlink()
    src = sqlite3.connect(str(path), timeout=120)
    try:
        try:
            tables = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise StoreDamagedError(
                f"the result store {path} is damaged beyond salvage ({exc}): move it away (e.g. "
                f"mv {path} {path}.damaged) and run the same command again to recompute the run", path) from exc
        out = sqlite3.connect(str(tmp))
        out.executescript(SCHEMA)
        report = {}
        for table in SALVAGED_TABLES:
            if table not in tables:
                continue
            try:
                have = [r[1] for r in src.execute(f'PRAGMA table_info("{table}")')]
            except sqlite3.DatabaseError:
                continue
            want = [r[1] for r in out.execute(f'PRAGMA table_info("{table}")')]
            cols = [c for c in want if c in have]
            kept = dropped = 0
            lost = [0]
            ins = f'INSERT OR REPLACE INTO "{table}" ({", ".join(cols)}) VALUES ({", ".join("?" * len(cols))})'
            for row in _read_rows(src, table, cols, lost):
                if _valid_row(table, cols, row):
                    out.execute(ins, row)
                    kept += 1
                else:
                    dropped += 1
            report[table] = (kept, dropped + lost[0])
        out.commit()
        out.close()
    finally:
        src.close()
    aside = path.with_name(f"{STORE_FILE}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, aside)
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            os.replace(side, Path(str(aside) + suffix))
    os.replace(tmp, path)
    kept = ", ".join(f"{t} {k} kept" + (f" / {d} lost" if d else "") for t, (k, d) in report.items())
    log(f"salvaged the damaged result store {path}: {kept}; the damaged file is at {aside}; "
        "what was lost is recomputed")
    return report
