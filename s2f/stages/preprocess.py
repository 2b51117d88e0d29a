"""preprocess: clips → 6 s 16 kHz mono waveforms and 224×224 face crops in shards; rejects go to quarantine.

Reads the `preprocess` section. Writes OUT/shard-*.npz, OUT/manifest.parquet, OUT/quarantine.csv and a summary
metric (accepted count, rejections by reason).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from s2f.config import PreprocessParams, resolve_workers
from s2f.preprocess import preprocess_corpus
from s2f.stages.common import load_params, stage_parser, write_json


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument("--out", type=Path, default=Path("data/preprocessed"))
    parser.add_argument("--summary", type=Path, default=Path("reports/preprocess.json"))
    args = parser.parse_args(argv)
    params: PreprocessParams = load_params("preprocess", args.params)
    manifest = pd.read_csv(args.raw / "manifest.csv")
    accepted, quarantined = preprocess_corpus(manifest, args.raw, args.out, params, resolve_workers(params.workers))
    if accepted.empty:
        raise SystemExit(f"preprocess: all {len(manifest)} clips were rejected; see {args.out / 'quarantine.csv'}")
    rejected = quarantined["reason"].value_counts().to_dict()
    write_json(args.summary, {"clips": len(manifest), "accepted": len(accepted), "rejected": rejected})
    print(f"preprocess: {len(accepted)} accepted, {len(quarantined)} quarantined {rejected or ''}")


if __name__ == "__main__":
    main()
