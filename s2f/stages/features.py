"""features: face features (dlib 128-D descriptor by default) and 68 landmarks per sample; the speaker split.

Reads the `features` section. Writes OUT/features-*.npz, OUT/validation/ (each shard's deterministic Great
Expectations verdict), OUT/manifest.parquet (with a `split` column) and OUT/identity_head.{pt,json}. With
--partition K (the pipeline's `features@K`, on the part `preprocess@K` made) only the shards are made, and the split
and identity head, which need every speaker, are left to `gather`. Finished shards are kept in WORK between runs,
so a killed run resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path

from s2f.config import FeaturesParams, resolve_workers
from s2f.features import compute_features, feature_shards
from s2f.io.shards import write_table
from s2f.stages.common import load_params, run_stage, stage_parser


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--pre", type=Path, default=Path("data/preprocessed"),
                        help="preprocessed sample shards")
    parser.add_argument("--out", type=Path, default=Path("data/features"),
                        help="face-feature and landmark shards (a partition's part under --partition)")
    parser.add_argument("--work", type=Path, default=Path("data/interim/features"),
                        help="finished shards, their records, GX results and Data Docs survive here between runs "
                             "(DVC empties OUT before the stage runs); one folder per partition")
    parser.add_argument("--partition", type=int, default=None,
                        help="PRE is partition K's part: write its feature shards and their samples (no split) "
                             "for `gather`")
    args = parser.parse_args(argv)
    params: FeaturesParams = load_params("features", args.params)
    if args.partition is not None:
        kept = feature_shards(args.pre, args.out, params, resolve_workers(params.workers), args.work)
        write_table(args.out / "manifest.parquet", kept)
        print(f"features (partition {args.partition}): {len(kept)} samples, {params.backend} backend")
        return
    manifest = compute_features(args.pre, args.out, params, resolve_workers(params.workers), args.work)
    counts = manifest.groupby("split")["speaker"].nunique().to_dict()
    print(f"features: {len(manifest)} samples, {params.backend} backend, speakers per split {counts}")


if __name__ == "__main__":
    run_stage(main)
