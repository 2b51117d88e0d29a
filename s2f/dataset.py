"""Load one split's samples into memory by joining preprocessed shards with their face-feature shards.

The demo corpus is a few hundred MB at most; real corpora stream shards instead (a later issue).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from s2f.io.shards import read_shard


@dataclass
class SplitData:
    manifest: pd.DataFrame     # one row per sample, in the order of the arrays below
    embedding: np.ndarray      # (N, D) float32 face features
    audio: np.ndarray | None   # (N, L) int16
    face: np.ndarray | None    # (N, 224, 224, 3) uint8
    landmarks: np.ndarray | None = None  # (N, 68, 2) float32 dlib points in crop pixels

    @property
    def speakers(self) -> np.ndarray:
        return self.manifest["speaker"].to_numpy()


def load_split(pre_dir: Path, feat_dir: Path, split: str, audio: bool = True, faces: bool = False,
               landmarks: bool = False) -> SplitData:
    manifest = pd.read_parquet(feat_dir / "manifest.parquet")
    manifest = manifest[manifest["split"] == split].sort_values(["shard", "index"]).reset_index(drop=True)
    if manifest.empty:
        raise ValueError(f"no samples in split {split!r} of {feat_dir}")
    emb, wav, img, marks = [], [], [], []
    for shard, rows in manifest.groupby("shard", sort=True):
        idx = rows["index"].to_numpy()
        feats = read_shard(feat_dir / rows["features_shard"].iloc[0], ["embedding"] + ["landmarks"] * landmarks)
        emb.append(feats["embedding"][idx])
        if landmarks:
            marks.append(feats["landmarks"][idx])
        wanted = ["audio"] * audio + ["face"] * faces
        if wanted:
            pre = read_shard(pre_dir / shard, wanted)
            if audio:
                wav.append(pre["audio"][idx])
            if faces:
                img.append(pre["face"][idx])
    return SplitData(manifest, np.concatenate(emb),
                     np.concatenate(wav) if audio else None, np.concatenate(img) if faces else None,
                     np.concatenate(marks) if landmarks else None)
