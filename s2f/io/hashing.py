"""Content hashes of files, remembered by (path, size, mtime, inode) so a resume does not read a corpus twice.

Why content and not mtimes: a result keyed by a file's mtime is redone whenever the file is rewritten with the same
bytes (`dvc repro -f download`, a checkout, a copy to another machine), and worse, two machines never agree on a
key. Why a cache: hashing 1.7 M clips on every resume would cost hours; like DVC's own state database, the stat
tuple only decides whether the remembered hash is still the file's, never what the key is.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

_BLOCK = 1 << 20


def file_sha256(path: Path) -> str:
    """sha256 of the file's bytes, read in 1 MiB blocks (memory does not grow with the file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: Path) -> dict:
    """{"size": bytes, "sha256": hex}: what a done-record keeps to check a file before reusing it."""
    return {"size": Path(path).stat().st_size, "sha256": file_sha256(path)}


def digest_matches(path: Path, expected: dict, sha256: Callable[[Path], str] = file_sha256) -> str | None:
    """None when `path` has the recorded size and hash (`sha256`, e.g. a HashCache's), else why not."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size != expected.get("size"):
        return f"size {size} B, recorded {expected.get('size')} B"
    if sha256(path) != expected.get("sha256"):
        return "content differs from the recorded sha256"
    return None


class HashCache:
    """sha256 of files, remembered in a SQLite file keyed by the resolved path and its stat (size, mtime, inode).

    Use as a context manager; one per process (SQLite connections are not shared across forks).
    """

    def __init__(self, db: Path | None):
        self._db = None
        if db is not None:
            Path(db).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(db)
            self._db.execute("CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER, "
                             "mtime_ns INTEGER, inode INTEGER, sha256 TEXT)")

    def __enter__(self) -> HashCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._db is not None:
            self._db.commit()
            self._db.close()
            self._db = None

    def sha256(self, path: Path) -> str:
        """The file's content hash, read from the cache when its stat is unchanged, else computed and stored."""
        path = Path(path).resolve()
        st = os.stat(path)
        stat = (st.st_size, st.st_mtime_ns, st.st_ino)
        key = os.fsencode(path).decode("utf-8", "surrogateescape").encode("utf-8", "backslashreplace").decode()
        if self._db is not None:
            row = self._db.execute("SELECT size, mtime_ns, inode, sha256 FROM hashes WHERE path = ?", (key,)).fetchone()
            if row is not None and tuple(row[:3]) == stat:
                return row[3]
        digest = file_sha256(path)
        if self._db is not None:
            self._db.execute("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?)", (key, *stat, digest))
        return digest
