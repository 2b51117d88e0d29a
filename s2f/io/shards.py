"""Samples stored as fixed-size NumPy shards plus one manifest table, instead of one file per sample.

Why: DVC and S3 are slow with millions of small files. A shard is an `.npz` of plain arrays (never pickled objects:
it is loaded with `allow_pickle=False`), written to a temporary name and renamed, so a killed run leaves no
half-written shard behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd


def shard_name(index: int, prefix: str = "shard") -> str:
    return f"{prefix}-{index:05d}.npz"


def shard_index(name: str) -> int:
    """The index in a shard file name (`shard-00042.npz` → 42)."""
    return int(Path(name).stem.rsplit("-", 1)[1])


def work_key(payload: object) -> str:
    """A content hash of everything a shard's result depends on (its inputs and the params that shape it)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def source_hash(names: list[str]) -> str:
    """A hash of the s2f source files (or every .py under the folders) named relative to the package root.

    Why: a fix to the code that made a result must make that result stale, not let a resume reuse it.
    """
    root = Path(__file__).resolve().parents[1]
    files = sorted(f for name in names for f in ([root / name] if name.endswith(".py") else (root / name).rglob("*.py")))
    return work_key([(str(f.relative_to(root)), f.read_text()) for f in files])


def read_record(path: Path, key: str) -> dict | None:
    """The done-record of a shard if it exists and was made from the same inputs (`key`), else None.

    Why records: a shard is finished only when its record is written (last, atomically), so a run killed mid-shard
    redoes that shard and a rerun with changed inputs or params redoes exactly the shards they touch.
    """
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("key") == key else None


def write_record(path: Path, key: str, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"key": key, **payload}, indent=1, default=str))  # key order = column order
    os.replace(tmp, path)


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


def read_shard(path: Path, keys: list[str] | None = None) -> dict[str, np.ndarray]:
    """The shard's arrays, or only `keys` of them (an `.npz` member is read only when asked for)."""
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in (keys if keys is not None else npz.files)}


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
