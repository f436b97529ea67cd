"""A persistent cache of method-independent work (faces found on originals, landmarks, gallery
embeddings, Inception features), shared by runs and commands.

One SQLite file; keys are ``<kind>|<backend version>|<sha1 of the image file's bytes>``, so a
changed image or a new backend version never hits a stale entry. Values are ``.npy`` bytes
(``allow_pickle=False`` on read) or JSON for small records, each stored with its CRC-32.

The cache is disposable, so it heals itself: a file that fails ``PRAGMA quick_check`` on open, or
a read or write that SQLite answers with "malformed" / "not a database", moves the file aside
(``features.sqlite.damaged-<time>``, one warning naming it) and starts an empty one; an entry whose
bytes fail their checksum is dropped and recomputed. A damaged cache never becomes a skipped image.
A full disk is not healed: it raises :class:`DiskFullError` naming the file.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import sqlite3
import sys
import time
import zlib
from pathlib import Path

import numpy as np


class StorageError(RuntimeError):
    """A fault of the disk or of a file the run writes, not of an image: the run stops (it is
    never recorded as a skipped image). ``path`` names the file."""

    def __init__(self, message: str, path: Path | str | None = None):
        super().__init__(message)
        self.path = None if path is None else Path(path)


class DiskFullError(StorageError):
    """The disk (or the file's size limit) is full while writing ``path``; what was committed stays."""


def is_corrupt(exc: BaseException) -> bool:
    """SQLite's "database disk image is malformed" / "file is not a database", or text whose bytes
    are no longer UTF-8 (damage inside a row that SQLite's page checks do not see)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return True
    msg = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and (
        "malformed" in msg or "not a database" in msg or "could not decode to utf-8" in msg)  # damaged text


def is_disk_full(exc: BaseException, path: Path | str | None = None) -> bool:
    """ENOSPC / SQLITE_FULL; or SQLite's "disk I/O error" where ``path``'s file system has (almost) no
    space left (SQLite reports a failed write to its -shm / -wal file that way)."""
    if isinstance(exc, OSError) and not isinstance(exc, sqlite3.Error):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_FULL") or "database or disk is full" in str(exc).lower():
        return True
    if path is not None and (name.startswith("SQLITE_IOERR") or "disk i/o error" in str(exc).lower()):
        try:
            st = os.statvfs(Path(path).parent)
            return st.f_bavail * st.f_frsize < (1 << 20)
        except OSError:
            return False
    return False


def disk_full(path, exc: BaseException) -> DiskFullError:
    return DiskFullError(f"no space left on the device while writing {path} ({exc}); what was already "
                         "committed is kept: free some space and run the same command again to resume", path)


def default_cache_dir() -> Path:
    return Path(os.environ.get("KPDP_BENCH_CACHE", Path.home() / ".cache" / "kpdp-bench"))


def default_cache_path() -> Path:
    return default_cache_dir() / "features.sqlite"


def file_digest(path: Path | str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_DIGEST = re.compile(r"^[0-9a-f]{40,}$")


def split_key(key: str) -> tuple[str, str]:
    """(kind, version) of a key ``kind|version...|digest[|feature]`` (the version may hold ``|``)."""
    parts = key.split("|")
    kind = parts[0]
    for i in range(len(parts) - 1, 0, -1):
        if _DIGEST.match(parts[i]):
            return kind, "|".join(parts[1:i])
    return kind, "|".join(parts[1:-1])


def _checksum(value: bytes) -> int:
    return zlib.crc32(value)


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


class FeatureCache:
    def __init__(self, path: Path | str | None = None, check: bool = True, heal: bool = True):
        """``check``: ``PRAGMA quick_check`` on open; ``heal``: move a damaged file aside (else raise)."""
        path = Path(path) if path else default_cache_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db: sqlite3.Connection | None = None
        self._ino = None
        self.heal = heal
        self._open(check)

    # -- opening, checking, healing ------------------------------------------------------------
    def _connect(self) -> None:
        self.db = sqlite3.connect(str(self.path), timeout=60, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value BLOB, crc INTEGER)")
        cols = {r[1] for r in self.db.execute("PRAGMA table_info(cache)")}
        if "crc" not in cols:  # a cache written before checksums: its entries are read unverified
            self.db.execute("ALTER TABLE cache ADD COLUMN crc INTEGER")
        self._ino = self._inode()

    def _inode(self):
        try:
            st = os.stat(self.path)
            return st.st_dev, st.st_ino
        except FileNotFoundError:
            return None

    def _open(self, check: bool) -> None:
        try:
            self._connect()
            if check:
                bad = self.integrity()
                if bad != "ok":
                    raise sqlite3.DatabaseError(f"quick_check: {bad}")
        except sqlite3.Error as exc:
            if is_disk_full(exc, self.path):
                raise disk_full(self.path, exc) from exc
            if not is_corrupt(exc) and not str(exc).startswith("quick_check"):
                raise
            if not self.heal:
                raise
            self._heal(exc)

    def integrity(self) -> str:
        """``ok`` or the first problems ``PRAGMA quick_check`` reports."""
        rows = [r[0] for r in self.db.execute("PRAGMA quick_check(3)")]
        return "ok" if rows == ["ok"] else " ".join(" ".join(rows).replace("*** in database main ***", "").split())

    def _heal(self, exc: BaseException) -> None:
        """Move the damaged file aside and start an empty cache (unless another process already did)."""
        import fcntl

        self._close_quietly()
        with open(str(self.path) + ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self._ino is not None and self._inode() not in (None, self._ino):
                _warn(f"feature cache {self.path} was replaced by another process: reopening")
                self._connect()
                return
            aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
            if self.path.exists():
                os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                side = Path(str(self.path) + suffix)
                if side.exists():
                    os.replace(side, Path(str(aside) + suffix))
            _warn(f"feature cache {self.path} is damaged ({exc}): moved aside to {aside}; "
                  "rebuilding it (cached work is recomputed)")
            self._connect()

    def _close_quietly(self) -> None:
        try:
            if self.db is not None:
                self.db.close()
        except sqlite3.Error:
            pass
        self.db = None

    def _do(self, fn, *args):
        """Run ``fn(db, *args)``; a damaged file is healed and the call retried once."""
        if self._ino is not None and self._inode() != self._ino:  # moved aside or cleared elsewhere
            self._close_quietly()
            self._connect()
        for attempt in (0, 1):
            try:
                return fn(self.db, *args)
            except sqlite3.Error as exc:
                if is_disk_full(exc, self.path):
                    raise disk_full(self.path, exc) from exc
                if is_corrupt(exc) and attempt:
                    raise StorageError(f"feature cache {self.path} is damaged again after rebuilding it "
                                       f"({exc}); check the disk, or set KPDP_BENCH_CACHE to another folder",
                                       self.path) from exc
                if not is_corrupt(exc):  # locked past the timeout, an I/O error: the run stops, no image skipped
                    raise StorageError(f"feature cache {self.path}: {exc}", self.path) from exc
                self._heal(exc)
            except OSError as exc:
                if is_disk_full(exc):
                    raise disk_full(self.path, exc) from exc
                raise

    # -- entries -------------------------------------------------------------------------------
    @staticmethod
    def key(kind: str, version: str, digest: str) -> str:
        return f"{kind}|{version}|{digest}"

    def _get(self, key: str) -> bytes | None:
        row = self._do(lambda db: db.execute("SELECT value, crc FROM cache WHERE key = ?", (key,)).fetchone())
        if row is None:
            return None
        value, crc = row
        value = value.encode() if isinstance(value, str) else bytes(value)
        if crc is not None and _checksum(value) != crc:
            _warn(f"feature cache {self.path}: entry {key[:60]}... fails its checksum: dropped, recomputed")
            self._do(lambda db: db.execute("DELETE FROM cache WHERE key = ?", (key,)))
            return None
        return value

    def _put(self, key: str, value: bytes) -> None:
        self._do(lambda db: db.execute("INSERT OR REPLACE INTO cache VALUES (?, ?, ?)",
                                       (key, value, _checksum(value))))

    def get_array(self, key: str) -> np.ndarray | None:
        value = self._get(key)
        if value is None:
            return None
        try:
            return np.load(io.BytesIO(value), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:  # legacy entry without checksum, damaged
            _warn(f"feature cache {self.path}: entry {key[:60]}... unreadable ({exc}): dropped, recomputed")
            self._do(lambda db: db.execute("DELETE FROM cache WHERE key = ?", (key,)))
            return None

    def put_array(self, key: str, value: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, np.asarray(value), allow_pickle=False)
        self._put(key, buf.getvalue())

    def get_json(self, key: str):
        value = self._get(key)
        if value is None:
            return None
        try:
            return json.loads(value)
        except ValueError as exc:
            _warn(f"feature cache {self.path}: entry {key[:60]}... unreadable ({exc}): dropped, recomputed")
            self._do(lambda db: db.execute("DELETE FROM cache WHERE key = ?", (key,)))
            return None

    def put_json(self, key: str, value) -> None:
        self._put(key, json.dumps(value).encode())

    def __len__(self) -> int:
        return self._do(lambda db: db.execute("SELECT COUNT(*) FROM cache").fetchone()[0])

    # -- bench cache info / clear --------------------------------------------------------------
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.path, Path(str(self.path) + "-wal")) if p.exists())

    def counts(self) -> dict[tuple[str, str], tuple[int, int]]:
        """{(kind, version): (entries, bytes)}."""
        out: dict[tuple[str, str], list[int]] = {}
        for key, n in self._do(lambda db: db.execute("SELECT key, length(value) FROM cache").fetchall()):
            c = out.setdefault(split_key(key), [0, 0])
            c[0] += 1
            c[1] += n or 0
        return {k: tuple(v) for k, v in sorted(out.items())}

    def clear(self, kind: str | None = None) -> int:
        """Delete every entry (or those of ``kind``); returns how many."""
        def run(db):
            if kind is None:
                n = db.execute("SELECT COUNT(*) FROM cache").fetchone()[0]
                db.execute("DELETE FROM cache")
            else:
                n = db.execute("SELECT COUNT(*) FROM cache WHERE key LIKE ? ESCAPE '\\'",
                               (kind.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "|%",)
                               ).fetchone()[0]
                db.execute("DELETE FROM cache WHERE key LIKE ? ESCAPE '\\'",
                           (kind.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "|%",))
            return n

        n = self._do(run)
        self._do(lambda db: db.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
        self._do(lambda db: db.execute("VACUUM"))
        return n

    def close(self):
        self._close_quietly()
