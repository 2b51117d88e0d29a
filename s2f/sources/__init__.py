"""Where raw clips come from, behind one interface: a source writes clips under a folder and returns the manifest.

The manifest has one row per clip with at least `sample_id`, `clip` (path relative to the folder) and `speaker`.
`demo` is built in; `avspeech` and `local` join here (a later issue).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from s2f.config import DataParams, resolve_workers

MANIFEST_COLUMNS = ["sample_id", "clip", "speaker"]


def fetch(params: DataParams, out_dir: Path) -> pd.DataFrame:
    if params.source == "demo":
        from s2f.demo.corpus import generate_demo_corpus

        manifest = generate_demo_corpus(params.demo, out_dir, resolve_workers(params.workers))
    else:  # pragma: no cover - guarded by the Literal type in DataParams
        raise ValueError(f"unknown data source {params.source!r}")
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise ValueError(f"source {params.source!r} produced a manifest without {missing}")
    return manifest
