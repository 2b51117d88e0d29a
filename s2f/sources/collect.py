"""Collect: the download partitions (`download@K`) merged into the one raw corpus `preprocess` reads.

Each partition fetched its share of the source into its own folder, on its own worker, under its own rate limit and
with its own ledger. Collecting links their media side by side (same relative paths), merges their manifests in the
source's order (each row's `source_row`) and, for AVSpeech, totals their fetch summaries. The merged manifest is
the one an unpartitioned download writes, byte for byte (tested), so P never changes what preprocessing sees.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd

from s2f.io.shards import link_or_copy, write_table
from s2f.partitions import partition_folders
from s2f.sources import read_clip_manifest
from s2f.sources.fetch import SOURCE_ROW

MANIFEST = "manifest.csv"
FETCH_SUMMARY = "fetch_summary.json"
SUMMED = ("segments", "done", "fetched_now", "skipped_done", "skipped_permanent", "skipped_not_due", "not_tried",
          "failed_permanent")


def partition_dirs(root: Path, count: int) -> list[Path]:
    """`root/0` … `root/count-1`; a missing one is an error naming it (its download stage has not run)."""
    return partition_folders(root, count, MANIFEST, "download partitions", "download@K")


def _merged_manifest(parts: list[Path]) -> pd.DataFrame:
    """The parts' rows in source order, as the text they were written with (no float or id reformatting)."""
    tables = [pd.read_csv(p / MANIFEST, dtype=str, keep_default_na=False, encoding_errors="surrogateescape")
              for p in parts]
    merged = pd.concat(tables, ignore_index=True)
    order = merged[SOURCE_ROW].astype(int).sort_values(kind="stable").index
    return merged.loc[order].drop(columns=SOURCE_ROW).reset_index(drop=True)


def _link_media(parts: list[Path], out_dir: Path) -> None:
    for part in parts:
        for path in sorted(part.rglob("*")):
            if path.is_file() and path.relative_to(part).as_posix() not in (MANIFEST, FETCH_SUMMARY):
                link_or_copy(path, out_dir / path.relative_to(part))


def merged_fetch_summary(summaries: list[dict]) -> dict:
    """AVSpeech's per-partition fetch summaries (one ledger each) as one: counts summed, failures by reason summed,
    each partition's own summary kept under `partitions`."""
    failed = sum((Counter(s.get("failed", {})) for s in summaries), Counter())
    retry = sorted(s["next_retry_after"] for s in summaries if s.get("next_retry_after"))
    return {**{key: sum(s.get(key, 0) for s in summaries) for key in SUMMED}, "failed": dict(sorted(failed.items())),
            "next_retry_after": retry[0] if retry else None, "partitions": summaries}


def collect(parts: list[Path], out_dir: Path) -> pd.DataFrame:
    """Write `out_dir` as one download would (media, `manifest.csv`, AVSpeech's `fetch_summary.json`); return the
    manifest as `preprocess` reads it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    merged = _merged_manifest(parts)
    _link_media(parts, out_dir)
    write_table(out_dir / MANIFEST, merged)
    summaries = [json.loads((p / FETCH_SUMMARY).read_text()) for p in parts if (p / FETCH_SUMMARY).is_file()]
    if summaries:
        (out_dir / FETCH_SUMMARY).write_text(json.dumps(merged_fetch_summary(summaries), indent=2) + "\n")
    return read_clip_manifest(out_dir / MANIFEST)
