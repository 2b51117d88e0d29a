"""Partitions of the corpus's shards: the units that `preprocess@K` and `features@K` run on, one DVC stage each.

Shard k (the k-th run of `shard_size` manifest rows) belongs to partition k mod P. Round robin, not ranges, so
clips appended to the manifest spread over every partition instead of growing the last one, and a partition's
shards keep their corpus-wide names: `gather` then only links them side by side, and a run with P partitions
publishes byte for byte the dataset a run with one would.
"""

from __future__ import annotations

from dataclasses import dataclass


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
