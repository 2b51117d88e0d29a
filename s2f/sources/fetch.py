"""`fetch`: the clip manifest of the configured source (demo, local or avspeech), its media under the output.

With a partition (the pipeline's `download@K`), only the partition's share of the source is fetched: demo speaker
i, local row r and AVSpeech segment r belong to partition (i or r) mod P. Each row then carries `source_row`, its
position in the whole source, so `s2f.sources.collect` merges the partitions into exactly the manifest one
unpartitioned download writes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from s2f.config import DataParams, resolve_workers
from s2f.io.shards import link_or_copy
from s2f.partitions import Partition
from s2f.sources import MANIFEST_COLUMNS

SOURCE_ROW = "source_row"


def fetch(params: DataParams, out_dir: Path, work_dir: Path | None = None,
          partition: Partition | None = None) -> pd.DataFrame:
    """The clip manifest of the configured source (or of one partition of it), its media under `out_dir`.

    `work_dir` keeps what must survive between runs (AVSpeech's download ledger and clips): DVC empties a stage's
    outputs before it runs, so without it every `dvc repro` would download everything again.
    """
    if params.source == "demo":
        from s2f.demo.corpus import generate_demo_corpus

        speakers = [i for i in range(params.demo.speakers) if partition is None or partition.owns(i)]
        manifest = generate_demo_corpus(params.demo, out_dir, resolve_workers(params.workers), speakers)
    elif params.source == "local":
        from s2f.sources.local import fetch_local

        manifest = fetch_local(params.local, out_dir, partition)
    elif params.source == "avspeech":
        from s2f.sources.avspeech import fetch_avspeech

        manifest = fetch_avspeech(params.avspeech, work_dir or out_dir, partition=partition)
        if work_dir is not None and work_dir != out_dir:
            for name in list(manifest["clip"]) + ["fetch_summary.json"]:
                link_or_copy(work_dir / name, out_dir / name)
    else:  # pragma: no cover - guarded by the Literal type in DataParams
        raise ValueError(f"unknown data source {params.source!r}")
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise ValueError(f"source {params.source!r} produced a manifest without {missing}")
    if partition is None:
        return manifest.reset_index(drop=True)
    return manifest.assign(**{SOURCE_ROW: manifest.index}).reset_index(drop=True)
