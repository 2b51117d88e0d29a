"""Gather: the parts that `preprocess@K` and `features@K` made, merged into the dataset the trainers read.

A partition's part holds its own shards (under their corpus-wide names), their verdicts, its rows of both tables and
`part.json`. Gathering links the shards side by side, merges the tables in corpus order, totals the validation
summaries (the bad-shard limit is checked here, over the whole corpus) and then does what needs every speaker: the
split and the identity head. The result is the one a single unpartitioned run writes, byte for byte (tested), so
changing the number of partitions never changes what the trainers see.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from s2f.config import FeaturesParams
from s2f.features import finish_features
from s2f.io.shards import link_or_copy, quarantine_table, write_json_atomic, write_table
from s2f.partitions import partition_folders
from s2f.preprocess import PART_INFO, check_bad_shards

SHARD_FILES = ("*.npz", "validation/*.json", "quarantine/*.npz")


def part_dirs(root: Path, count: int) -> list[Path]:
    """`root/0` … `root/count-1`; a missing one is an error naming it (its stage has not run)."""
    return partition_folders(root, count, "manifest.parquet", "partition parts", "preprocess@K / features@K")


def _link_shards(parts: list[Path], out_dir: Path) -> None:
    for part in parts:
        for pattern in SHARD_FILES:
            for path in sorted(part.glob(pattern)):
                link_or_copy(path, Path(out_dir) / path.relative_to(part))


def _in_corpus_order(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """The parts' rows in the order one run writes them: by shard, then by row within the shard."""
    filled = [t for t in tables if len(t.columns)]
    if not filled:
        return pd.DataFrame()
    return pd.concat(filled, ignore_index=True).sort_values(["shard", "index"], kind="stable").reset_index(drop=True)


def _quarantine(parts: list[Path]) -> pd.DataFrame:
    rows = [pd.read_csv(p / "quarantine.csv", dtype=str, keep_default_na=False, encoding_errors="surrogateescape")
            for p in parts]
    merged = pd.concat(rows, ignore_index=True).sort_values("shard", kind="stable")
    return quarantine_table(merged.to_dict("records"))


def _validation_summary(infos: list[dict]) -> dict:
    summaries = [info["validation"] for info in infos]
    places = sorted({s["gx_results_and_data_docs"] for s in summaries})
    return {"shards": sum(s["shards"] for s in summaries), "validated": sum(s["validated"] for s in summaries),
            "failed_validation": sorted(name for s in summaries for name in s["failed_validation"]),
            "gx_results_and_data_docs": places[0] if len(places) == 1 else places}


def gather_preprocessed(parts: list[Path], out_dir: Path, max_bad_shard_fraction: float) -> dict:
    """Write `out_dir` as one preprocess run would (shards, `manifest.parquet`, `quarantine.csv`, `validation/`);
    return the stage summary (clips, accepted, rejections by reason, uploads pending)."""
    infos = [json.loads((p / PART_INFO).read_text()) for p in parts]
    accepted = _in_corpus_order([pd.read_parquet(p / "manifest.parquet") for p in parts])
    quarantined = _quarantine(parts)
    _link_shards(parts, out_dir)
    summary = _validation_summary(infos)
    write_json_atomic(Path(out_dir) / "validation" / "summary.json", summary, sort_keys=True)
    write_table(Path(out_dir) / "manifest.parquet", accepted)
    write_table(Path(out_dir) / "quarantine.csv", quarantined)
    check_bad_shards(summary["failed_validation"], summary["validated"], max_bad_shard_fraction,
                     Path(out_dir) / "validation")
    return {"clips": sum(i["clips"] for i in infos), "accepted": len(accepted),
            "rejected": quarantined["reason"].value_counts().to_dict(),
            "pending_uploads": sum(i["pending_uploads"] for i in infos)}


def gather_features(parts: list[Path], pre_dir: Path, out_dir: Path, params: FeaturesParams) -> pd.DataFrame:
    """Write `out_dir` as one features run would: the parts' shards, then the split and the identity head."""
    kept = _in_corpus_order([pd.read_parquet(p / "manifest.parquet") for p in parts])
    if kept.empty:
        raise ValueError(f"no sample has features in any of {[str(p) for p in parts]}")
    _link_shards(parts, out_dir)
    return finish_features(kept, pre_dir, out_dir, params)
