"""Compute face features and landmarks for every preprocessed sample, shard by shard, and fix the split."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from s2f.config import FeaturesParams
from s2f.faces.detect import FaceBox
from s2f.faces.features import get_backend, landmarks_68
from s2f.io.shards import read_shard, write_shard, write_table
from s2f.parallel import process_map
from s2f.split import split_speakers


def _features_of(item: tuple[np.ndarray, np.ndarray], backend_name: str) -> tuple[np.ndarray, np.ndarray]:
    crop, box = item
    face_box = FaceBox(*map(int, box), score=1.0)
    return get_backend(backend_name).embed(crop, face_box), landmarks_68(crop, face_box)


def compute_features(pre_dir: Path, out_dir: Path, params: FeaturesParams, workers: int) -> pd.DataFrame:
    """Write `out_dir/features-*.npz` (sample_id, embedding, landmarks) and `manifest.parquet` with a split column."""
    manifest = pd.read_parquet(pre_dir / "manifest.parquet")
    work = partial(_features_of, backend_name=params.backend)
    with process_map(workers) as pmap:
        for shard in sorted(manifest["shard"].unique()):
            arrays = read_shard(pre_dir / shard, ["sample_id", "face", "face_box"])
            items = list(zip(arrays["face"], arrays["face_box"]))
            results = pmap(work, items)
            write_shard(out_dir / shard.replace("shard-", "features-"), {
                "sample_id": arrays["sample_id"],
                "embedding": np.stack([r[0] for r in results]),
                "landmarks": np.stack([r[1] for r in results]),
            })
    manifest = manifest.assign(features_shard=manifest["shard"].str.replace("shard-", "features-"),
                               backend=params.backend,
                               split=split_speakers(manifest["speaker"], params.split.test_fraction, params.split.seed))
    write_table(out_dir / "manifest.parquet", manifest)
    return manifest
