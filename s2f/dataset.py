"""One split's samples as columns read row by row from the shards: training memory bounded, not grown by the corpus.

A `ShardColumn` looks enough like an (N, ...) array for the trainers — `len`, `shape`, `col[i]`, `col[i, a:b]`,
`col[mask]` (a lazy subset), `col[a:b]` (those rows, read) — but holds only where each row lives. Rows are read on
demand (`s2f.io.shard_rows`: one `pread`, or one ranged GET for `s3://` shards, plus the FLAC/JPEG decode), so the
loader's worker processes read and decode each batch in parallel with the model's step. `np.asarray(col)` reads
every row: for the small things (a split's face features at demo size, an evaluation's test split).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from s2f.io.shard_rows import ShardRows


class ShardColumn:
    """`column` of the rows `rows[k] = (shard number, row in that shard)` of the shards at `locations`."""

    def __init__(self, column: str, locations: list[str], rows: np.ndarray):
        self.column, self.locations, self.rows = column, locations, np.asarray(rows, np.int64).reshape(-1, 2)
        self._readers: dict[int, ShardRows] = {}
        self._row_shape: tuple[int, ...] | None = None
        self._dtype: np.dtype | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def _reader(self, shard: int) -> ShardRows:
        reader = self._readers.get(shard)
        if reader is None:
            reader = self._readers[shard] = ShardRows(self.locations[shard], [self.column])
        return reader

    def row(self, k: int, part: slice | None = None) -> np.ndarray:
        """Row k, or only `part` of its first axis (a window of a clip: only that much audio is decoded)."""
        shard, i = self.rows[k]
        return self._reader(int(shard)).row(self.column, int(i), part)

    def _describe(self) -> None:
        if self._row_shape is None:
            first = self.row(0) if len(self) else np.zeros(0)
            self._row_shape, self._dtype = first.shape, first.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        self._describe()
        return (len(self), *self._row_shape)

    @property
    def dtype(self) -> np.dtype:
        self._describe()
        return self._dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            head, rest = key[0], key[1:]
            if isinstance(head, (int, np.integer)) and len(rest) == 1 and isinstance(rest[0], slice) and head >= 0:
                return self.row(int(head), rest[0])
            return self[head][rest] if np.isscalar(head) else self[head][(slice(None), *rest)]
        if isinstance(key, (int, np.integer)):
            return self.row(int(key) + (len(self) if key < 0 else 0))
        if isinstance(key, slice):
            return self._stack(range(*key.indices(len(self))))
        index = np.asarray(key)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise IndexError(f"a mask of {index.shape} for a column of {len(self)} rows")
            index = np.flatnonzero(index)
        subset = ShardColumn(self.column, self.locations, self.rows[index])
        subset._readers, subset._row_shape, subset._dtype = self._readers, self._row_shape, self._dtype
        return subset

    def _stack(self, ks) -> np.ndarray:
        self._describe()
        out = np.empty((len(ks), *self._row_shape), self._dtype)
        for n, k in enumerate(ks):
            out[n] = self.row(k)
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        rows = self._stack(range(len(self)))
        return rows if dtype is None else rows.astype(dtype)

    def chunks(self, size: int = 1024):
        """The rows in order, `size` at a time: for statistics over a column too large to hold at once."""
        for start in range(0, len(self), size):
            yield self._stack(range(start, min(start + size, len(self))))

    def digest(self) -> str:
        """Which rows of which shard files (by path, size and mtime): a training checkpoint's data identity, cheap
        enough to take at any corpus size (reading every row to hash it is not)."""
        files = [[loc, *((os.stat(loc).st_size, os.stat(loc).st_mtime_ns) if not loc.startswith("s3://") else ())]
                 for loc in self.locations]
        payload = json.dumps([self.column, files]).encode() + self.rows.tobytes()
        return hashlib.sha256(payload).hexdigest()


class MappedRows:
    """`fn` applied to each row of `rows` (an array, a `ShardColumn` or another `MappedRows`) when the row is read:
    a per-sample transform (a resized face, a log-mel) that streams like its source. `np.asarray` computes them all."""

    def __init__(self, rows, fn: Callable[[np.ndarray], np.ndarray]):
        self.rows, self.fn = rows, fn

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self.fn(self.rows[key])
        return MappedRows(self.rows[key], self.fn)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self[0].shape)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.stack([self[k] for k in range(len(self))]) if len(self) else np.zeros((0,))
        return out if dtype is None else out.astype(dtype)

    def digest(self) -> str:
        inner = self.rows.digest() if hasattr(self.rows, "digest") else hashlib.sha256(
            np.ascontiguousarray(self.rows).tobytes()).hexdigest()
        return hashlib.sha256(f"{inner} {_describe(self.fn)}".encode()).hexdigest()


def _describe(fn: Callable) -> str:
    """A name for a row transform that is the same in every process and run (a `repr` holds memory addresses)."""
    if isinstance(fn, partial):
        named = lambda v: v.digest() if hasattr(v, "digest") else repr(v)  # noqa: E731
        keywords = [(k, named(v)) for k, v in sorted(fn.keywords.items())]
        return f"{_describe(fn.func)}{[named(a) for a in fn.args]}{keywords}"
    return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"


def is_lazy(rows) -> bool:
    """Whether `rows` are read (or computed) on access rather than held as an array."""
    return isinstance(rows, (ShardColumn, MappedRows))


@dataclass
class SplitData:
    manifest: pd.DataFrame             # one row per sample, in the order of the columns below
    embedding: ShardColumn | np.ndarray             # (N, D) float32 face features
    audio: ShardColumn | np.ndarray | None          # (N, L) int16
    face: ShardColumn | np.ndarray | None           # (N, 224, 224, 3) uint8
    landmarks: ShardColumn | np.ndarray | None = None  # (N, 68, 2) float32 dlib points in crop pixels

    @property
    def speakers(self) -> np.ndarray:
        return self.manifest["speaker"].to_numpy()

    def nbytes(self) -> int:
        """The decoded size of the columns loaded: what reading the split into memory would take."""
        columns = [c for c in (self.embedding, self.audio, self.face, self.landmarks) if c is not None]
        return int(sum(np.prod(c.shape, dtype=np.int64) * np.dtype(c.dtype).itemsize for c in columns))

    def for_training(self, in_memory_mb: float) -> SplitData:
        """In memory when it fits `in_memory_mb` (faster: no decoding per step), else streamed from the shards."""
        if self.nbytes() <= in_memory_mb * 2 ** 20:
            return self.in_memory()
        print(f"streaming {len(self.manifest)} samples ({self.nbytes() / 2 ** 20:.0f} MB decoded > "
              f"in_memory_mb {in_memory_mb:.0f}) from the shards", flush=True)
        return self

    def in_memory(self) -> SplitData:
        """The same samples with every column read into an array: for consumers that need the whole split at once
        (evaluation's galleries, the decoder's face alignment) and sizes that fit."""
        read = (lambda c: None if c is None else np.asarray(c))
        return SplitData(self.manifest, read(self.embedding), read(self.audio), read(self.face), read(self.landmarks))

    def subset(self, keep: np.ndarray) -> SplitData:
        """The samples where `keep` (a mask or indices), columns still lazy."""
        pick = (lambda c: None if c is None else c[keep])
        manifest = self.manifest[keep] if np.asarray(keep).dtype == bool else self.manifest.iloc[keep]
        return SplitData(manifest.reset_index(drop=True), self.embedding[keep], pick(self.audio), pick(self.face),
                         pick(self.landmarks))


def _join(base: Path | str, name: str) -> str:
    return f"{str(base).rstrip('/')}/{name}" if str(base).startswith("s3://") else str(Path(base) / name)


def load_split(pre_dir: Path | str, feat_dir: Path, split: str, audio: bool = True, faces: bool = False,
               landmarks: bool = False) -> SplitData:
    """`split`'s samples in shard order; `pre_dir` may be an `s3://` prefix holding the preprocessed shards."""
    manifest = pd.read_parquet(Path(feat_dir) / "manifest.parquet")
    manifest = manifest[manifest["split"] == split].sort_values(["shard", "index"]).reset_index(drop=True)
    if manifest.empty:
        raise ValueError(f"no samples in split {split!r} of {feat_dir}")
    pre_shards = sorted(manifest["shard"].unique())
    feat_shards = manifest.drop_duplicates("shard").set_index("shard").loc[pre_shards, "features_shard"].tolist()
    number = {name: n for n, name in enumerate(pre_shards)}
    rows = np.stack([manifest["shard"].map(number).to_numpy(), manifest["index"].to_numpy()], axis=1)
    pre = [_join(pre_dir, name) for name in pre_shards]
    feat = [_join(feat_dir, name) for name in feat_shards]
    return SplitData(manifest, ShardColumn("embedding", feat, rows),
                     ShardColumn("audio", pre, rows) if audio else None,
                     ShardColumn("face", pre, rows) if faces else None,
                     ShardColumn("landmarks", feat, rows) if landmarks else None)
