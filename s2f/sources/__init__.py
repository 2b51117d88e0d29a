"""Where raw clips come from, behind one interface: `fetch(params, out_dir)` puts clips under `out_dir` (or names
where they are) and returns the clip manifest that `preprocess` reads.

The manifest has one row per clip with the columns in `MANIFEST_COLUMNS`, plus optional ones a source knows:
`image` (a face photo to use instead of the video's frames: VoxCeleb audio joined with VGGFace images), `face_x` and
`face_y` (AVSpeech's normalised position of the speaker's face, which picks the speaker among several faces) and
`gender`. `clip` and `image` are paths relative to `out_dir`, absolute paths, or `s3://` URIs.

Sources: `demo` (generated offline, s2f.demo), `local` (s2f.sources.local) and `avspeech` (s2f.sources.avspeech).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from s2f.config import DataParams, resolve_workers
from s2f.io.shards import link_or_copy

MANIFEST_COLUMNS = ["sample_id", "clip", "speaker"]
OPTIONAL_COLUMNS = ["image", "face_x", "face_y", "gender"]


def read_clip_manifest(path: Path) -> pd.DataFrame:
    """The clip manifest a source wrote; file names that are not valid UTF-8 come back exactly (surrogate escapes)."""
    return pd.read_csv(path, encoding_errors="surrogateescape",  # object columns: Arrow strings refuse surrogates
                       dtype={"sample_id": str, "clip": object, "speaker": str, "image": object, "gender": str})


def fetch(params: DataParams, out_dir: Path, work_dir: Path | None = None) -> pd.DataFrame:
    """The clip manifest of the configured source, its media under `out_dir`.

    `work_dir` keeps what must survive between runs (AVSpeech's download ledger and clips): DVC empties a stage's
    outputs before it runs, so without it every `dvc repro` would download everything again.
    """
    if params.source == "demo":
        from s2f.demo.corpus import generate_demo_corpus

        manifest = generate_demo_corpus(params.demo, out_dir, resolve_workers(params.workers))
    elif params.source == "local":
        from s2f.sources.local import fetch_local

        manifest = fetch_local(params.local, out_dir)
    elif params.source == "avspeech":
        from s2f.sources.avspeech import fetch_avspeech

        manifest = fetch_avspeech(params.avspeech, work_dir or out_dir)
        if work_dir is not None and work_dir != out_dir:
            for name in list(manifest["clip"]) + ["fetch_summary.json"]:
                link_or_copy(work_dir / name, out_dir / name)
    else:  # pragma: no cover - guarded by the Literal type in DataParams
        raise ValueError(f"unknown data source {params.source!r}")
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise ValueError(f"source {params.source!r} produced a manifest without {missing}")
    return manifest
