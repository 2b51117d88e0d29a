"""Where raw clips come from, behind one interface: `s2f.sources.fetch.fetch(params, out_dir)` puts clips under
`out_dir` (or names where they are) and returns the clip manifest that `preprocess` reads.

The manifest has one row per clip with the columns in `MANIFEST_COLUMNS`, plus optional ones a source knows:
`image` (a face photo to use instead of the video's frames: VoxCeleb audio joined with VGGFace images), `face_x` and
`face_y` (AVSpeech's normalised position of the speaker's face, which picks the speaker among several faces) and
`gender`. `clip` and `image` are paths relative to `out_dir`, absolute paths, or `s3://` URIs.

Sources: `demo` (generated offline, s2f.demo), `local` (s2f.sources.local) and `avspeech` (s2f.sources.avspeech).
This package's `__init__` holds only the manifest contract, so reading a manifest (`preprocess`) does not make
the fetchers part of that stage's code (s2f.lineage: its DVC deps and shard fingerprints).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


MANIFEST_COLUMNS = ["sample_id", "clip", "speaker"]
OPTIONAL_COLUMNS = ["image", "face_x", "face_y", "gender"]


def read_clip_manifest(path: Path) -> pd.DataFrame:
    """The clip manifest a source wrote; file names that are not valid UTF-8 come back exactly (surrogate escapes)."""
    return pd.read_csv(path, encoding_errors="surrogateescape",  # object columns: Arrow strings refuse surrogates
                       dtype={"sample_id": str, "clip": object, "speaker": str, "image": object, "gender": str})
