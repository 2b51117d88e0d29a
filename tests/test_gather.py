"""Partitioned preprocess and features, gathered, give byte for byte the dataset one unpartitioned run writes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from s2f.config import FeaturesParams, PreprocessParams
from s2f.features import compute_features, feature_shards
from s2f.gather import gather_features, gather_preprocessed, part_dirs
from s2f.io.shards import write_table
from s2f.partitions import MissingPartition, Partition
from s2f.preprocess import preprocess_corpus

PARAMS = PreprocessParams(shard_size=2)


def _tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` by relative path → sha256 (what DVC would hash)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _summary(tree: dict[str, str], work: Path, folder: Path) -> str:
    """validation/summary.json with its work folder written as WORK; removed from `tree`."""
    del tree["validation/summary.json"]
    return (folder / "validation/summary.json").read_text().replace(str(work), "WORK")


@pytest.fixture(scope="module")
def corpus(demo_clips):
    """The demo clips plus two that cannot be read, so the quarantine spans shards of both partitions."""
    raw_dir, manifest = demo_clips
    broken = pd.DataFrame([{"sample_id": f"gone{i}", "clip": f"gone{i}.mp4", "speaker": "x"} for i in range(2)])
    rows = pd.concat([manifest.iloc[:1], broken.iloc[:1], manifest.iloc[1:4], broken.iloc[1:], manifest.iloc[4:]])
    return raw_dir, rows.reset_index(drop=True)


@pytest.fixture(scope="module")
def whole(tmp_path_factory, corpus):
    raw_dir, manifest = corpus
    root = tmp_path_factory.mktemp("whole")
    preprocess_corpus(manifest, raw_dir, root / "pre", PARAMS, workers=1, work_dir=root / "work")
    compute_features(root / "pre", root / "feat", FeaturesParams(), workers=1, work_dir=root / "fwork")
    return root


@pytest.fixture(scope="module")
def gathered(tmp_path_factory, corpus):
    """Three partitions sharing one preprocess work folder (as in one checkout), each with its own features."""
    raw_dir, manifest = corpus
    root = tmp_path_factory.mktemp("parted")
    count = 3
    for k in range(count):
        preprocess_corpus(manifest, raw_dir, root / "pre-parts" / str(k), PARAMS, workers=1,
                          work_dir=root / "work", partition=Partition(k, count))
        kept = feature_shards(root / "pre-parts" / str(k), root / "feat-parts" / str(k), FeaturesParams(), 1,
                              root / f"fwork-{k}")
        write_table(root / "feat-parts" / str(k) / "manifest.parquet", kept)
    summary = gather_preprocessed(part_dirs(root / "pre-parts", count), root / "pre", 0.1)
    gather_features(part_dirs(root / "feat-parts", count), root / "pre", root / "feat", FeaturesParams())
    return root, summary


def test_partitions_own_shards_round_robin():
    parts = [Partition(k, 3) for k in range(3)]
    assert [[k for k in range(7) if p.owns(k)] for p in parts] == [[0, 3, 6], [1, 4], [2, 5]]
    with pytest.raises(ValueError, match="partition 3 does not exist"):
        Partition(3, 3)


def test_each_partition_makes_only_its_shards(gathered):
    root, _ = gathered
    assert sorted(p.name for p in (root / "pre-parts" / "0").glob("*.npz")) == ["shard-00000.npz", "shard-00003.npz"]
    assert sorted(p.name for p in (root / "pre-parts" / "2").glob("*.npz")) == ["shard-00002.npz"]


def test_gathered_dataset_is_byte_identical_to_one_unpartitioned_run(whole, gathered):
    root, summary = gathered
    for folder in ("pre", "feat"):
        expected, got = _tree(whole / folder), _tree(root / folder)
        assert len(expected) >= 8
        if folder == "pre":  # it names the work folder's GX results, which these two runs keep in different places
            assert _summary(got, root / "work", root / folder) == _summary(expected, whole / "work", whole / folder)
        assert got == expected, folder
    quarantine = pd.read_csv(root / "pre" / "quarantine.csv")
    assert list(quarantine["sample_id"]) == ["gone0", "gone1"]
    assert summary == {"clips": 8, "accepted": 6, "rejected": {"missing_file": 2}, "pending_uploads": 0}


def test_a_missing_part_is_named(tmp_path):
    (tmp_path / "0").mkdir()
    with pytest.raises(MissingPartition, match="1"):
        part_dirs(tmp_path, 2)
