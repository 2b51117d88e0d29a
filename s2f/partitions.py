"""Partitions: the units `download@K` (source rows) and `preprocess@K`, `features@K` (shards) run on, one DVC stage
each, and the folders `collect` and `gather` merge them from.

Unit k (a source row, or the k-th run of `shard_size` manifest rows) belongs to partition k mod P. Round robin, not
ranges, so rows appended to the source spread over every partition instead of growing the last one, and a
partition's shards keep their corpus-wide names: `gather` then only links them side by side, and a run with P
partitions publishes byte for byte the dataset a run with one would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Partition:
    """Partition `index` of `count`."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"partition {self.index} does not exist: there are {self.count} (0 … {self.count - 1})")

    @classmethod
    def whole(cls) -> Partition:
        return cls(0, 1)

    @property
    def is_whole(self) -> bool:
        return self.count == 1

    def owns(self, shard_index: int) -> bool:
        return shard_index % self.count == self.index

    def __str__(self) -> str:
        return f"partition {self.index} of {self.count}"



class MissingPartition(FileNotFoundError):
    pass


def partition_folders(root: Path, count: int, marker: str, what: str, stages: str) -> list[Path]:
    """`root/0` … `root/count-1`, the folders a merge step (`collect`, `gather`) reads; those without `marker` (their
    `stages` have not run) are named in one error."""
    folders = [Path(root) / str(k) for k in range(count)]
    missing = [str(f) for f in folders if not (f / marker).is_file()]
    if missing:
        raise MissingPartition(f"{what} not found (has every {stages} run?): {missing}")
    return folders
