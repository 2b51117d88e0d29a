"""Samples stored as fixed-size NumPy shards plus one manifest table, instead of one file per sample.

Why: DVC and S3 are slow with millions of small files. A shard is an `.npz` of plain arrays (never pickled objects:
it is loaded with `allow_pickle=False`; audio and crops stored compressed, `s2f.io.codecs`), written to a temporary name and renamed, so a killed run leaves no
half-written shard behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from s2f.io import codecs
from s2f.io.hashing import HashCache, digest_matches, file_digest, file_sha256


def shard_name(index: int, prefix: str = "shard") -> str:
    return f"{prefix}-{index:05d}.npz"


def shard_index(name: str) -> int:
    """The index in a shard file name (`shard-00042.npz` → 42)."""
    return int(Path(name).stem.rsplit("-", 1)[1])


def work_key(payload: object) -> str:
    """A content hash of everything a shard's result depends on (its inputs and the params that shape it)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def record_name(shard: str) -> str:
    """A shard's done-record beside it (`shard-00001.npz` → `shard-00001.done.json`)."""
    return shard.replace(".npz", ".done.json")


def verdict_name(shard: str) -> str:
    """Where a shard's deterministic validation verdict lives (in the work folder and, published, in the output)."""
    return f"validation/{Path(shard).stem}.json"


GX_RESULTS = "gx/results"  # GX's full results (run ids, timestamps): reports in the work folder, not DVC outputs
GX_DOCS = "gx/docs"        # Data Docs, index.html


def write_json_atomic(path: Path, payload: object, indent: int = 1, sort_keys: bool = False) -> None:
    """JSON written to a temporary name and renamed, so a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=indent, sort_keys=sort_keys, default=str) + "\n")
    os.replace(tmp, path)


def read_record(path: Path, key: str, folder: Path | None = None, hashes: HashCache | None = None) -> dict | None:
    """The done-record of a shard if it exists, was made from the same inputs (`key`) and, when `folder` is given,
    every file it lists there still has the recorded size and sha256; else None (the shard is redone).

    Why records: a shard is finished only when its record is written (last, atomically), so a run killed mid-shard
    redoes that shard and a rerun with changed inputs or params redoes exactly the shards they touch. Why verify:
    a record vouches for files that can be truncated, deleted or replaced after it was written; republishing them
    on its word would pass a broken shard downstream with exit 0. With `hashes`, a file whose stat is unchanged
    since it was last hashed is not read again (a truncation or rewrite changes its size or mtime).
    """
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("key") != key:
        return None
    for name, digest in (record.get("files") or {}).items() if folder is not None else ():
        problem = digest_matches(Path(folder) / name, digest, hashes.sha256 if hashes else file_sha256)
        if problem is not None:
            print(f"{Path(folder) / name}: {problem}; redoing it", flush=True)
            return None
    return record


def write_record(path: Path, key: str, payload: dict, folder: Path | None = None,
                 files: list[str] = ()) -> None:
    """Write the record last and atomically; `files` (relative to `folder`) are recorded with size and sha256."""
    listed = {name: file_digest(Path(folder) / name) for name in files} if folder is not None else {}
    write_json_atomic(path, {"key": key, **payload, **({"files": listed} if listed else {})})  # key order kept


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link `src` to `dst` (a copy across file systems). Safe because finished files are never modified."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def move_to_quarantine(folder: Path, name: str) -> None:
    """Move a shard that failed validation to `folder/quarantine/`: kept for inspection, never read as data."""
    (folder / "quarantine").mkdir(parents=True, exist_ok=True)
    os.replace(folder / name, folder / "quarantine" / name)


def write_shard(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)


class ShardError(ValueError):
    """A shard file that cannot be read as one: the message names the file and the reason."""


def read_shard(path: Path, keys: list[str] | None = None, threads: int = 1) -> dict[str, np.ndarray]:
    """The shard's arrays, or only `keys` of them (an `.npz` member is read only when asked for).

    Columns stored encoded (`s2f.io.codecs`: FLAC audio, JPEG crops) come back decoded under their own name
    (`audio`, `face`), by `threads` threads. A missing, truncated or foreign file raises `ShardError` naming it (not
    numpy's bare `BadZipFile`).
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            stored = codecs.stored_columns(npz.files)
            missing = [k for k in keys or () if k not in npz.files and k not in stored]
            if missing:
                raise ShardError(f"{path}: no arrays {', '.join(missing)} (has {', '.join(npz.files)})")
            wanted = keys if keys is not None else [f for f in npz.files if not codecs.is_encoding_member(f)] + list(stored)
            return {key: _column(npz, key, stored, threads) for key in wanted}
    except FileNotFoundError:
        raise ShardError(f"{path}: missing") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        if isinstance(err, ShardError):
            raise
        raise ShardError(f"{path}: not a readable shard ({type(err).__name__}: {err}); "
                         f"it may be truncated: rerun the stage that wrote it") from None


def _column(npz, key: str, stored: dict[str, str], threads: int = 1) -> np.ndarray:
    if key in npz.files:
        return npz[key]
    data, offsets, crc32 = codecs.member_names(key, stored[key])
    checksums = npz[crc32] if crc32 in npz.files else None  # shards before 2026-12-07 have none
    return codecs.decode_column(npz[data], npz[offsets], stored[key], threads, checksums)


def write_table(path: Path, table: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".csv":
        table.to_csv(tmp, index=False, errors="surrogateescape")  # keeps non-UTF-8 file names byte-exact
    else:
        table.to_parquet(tmp, index=False)
    os.replace(tmp, path)


QUARANTINE_COLUMNS = ["sample_id", "clip", "stage", "reason", "detail"]


def quarantine_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=QUARANTINE_COLUMNS)
