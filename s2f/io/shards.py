"""Samples stored as fixed-size NumPy shards plus one manifest table, instead of one file per sample.

Why: DVC and S3 are slow with millions of small files. A shard is an `.npz` of plain arrays (never pickled objects:
it is loaded with `allow_pickle=False`), written to a temporary name and renamed, so a killed run leaves no
half-written shard behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd


def shard_name(index: int, prefix: str = "shard") -> str:
    return f"{prefix}-{index:05d}.npz"


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
        table.to_csv(tmp, index=False)
    else:
        table.to_parquet(tmp, index=False)
    os.replace(tmp, path)


QUARANTINE_COLUMNS = ["sample_id", "clip", "stage", "reason", "detail"]


def quarantine_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=QUARANTINE_COLUMNS)
