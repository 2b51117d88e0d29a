"""gather: the partitions' parts (`preprocess@K`, `features@K`) merged into the dataset the trainers read.

Reads the `preprocess` section (partitions, max_bad_shard_fraction) and the `features` section (split, identity
head). Writes PRE and FEATURES exactly as one unpartitioned preprocess and features run would (shards hard-linked
from the parts, tables in corpus order, the speaker split, the identity head) and the preprocess summary metric.
"""

from __future__ import annotations

from pathlib import Path

from s2f.config import FeaturesParams, PreprocessParams
from s2f.gather import gather_features, gather_preprocessed, part_dirs
from s2f.partitions import MissingPartition
from s2f.preprocess import TooManyBadShards
from s2f.stages.common import load_params, run_stage, stage_parser, write_json


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--pre-parts", type=Path, default=Path("data/parts/preprocessed"),
                        help="preprocess@K wrote PRE_PARTS/K")
    parser.add_argument("--feature-parts", type=Path, default=Path("data/parts/features"),
                        help="features@K wrote FEATURE_PARTS/K")
    parser.add_argument("--pre", type=Path, default=Path("data/preprocessed"),
                        help="where the preprocessed partitions are gathered (input parts: data/parts/preprocessed/K)")
    parser.add_argument("--features", type=Path, default=Path("data/features"),
                        help="where the feature partitions are gathered, with the speaker split and identity head")
    parser.add_argument("--summary", type=Path, default=Path("reports/preprocess.json"),
                        help="accepted and rejected counts over every partition (a DVC metrics file)")
    args = parser.parse_args(argv)
    pre: PreprocessParams = load_params("preprocess", args.params)
    feat: FeaturesParams = load_params("features", args.params)
    count = len(pre.partitions)
    try:
        summary = gather_preprocessed(part_dirs(args.pre_parts, count), args.pre, pre.max_bad_shard_fraction)
        if not summary["accepted"]:
            raise SystemExit(f"gather: all {summary['clips']} clips were rejected; see {args.pre / 'quarantine.csv'}")
        manifest = gather_features(part_dirs(args.feature_parts, count), args.pre, args.features, feat)
    except (MissingPartition, TooManyBadShards, ValueError) as err:
        raise SystemExit(f"gather: {err}") from None
    write_json(args.summary, summary)
    counts = manifest.groupby("split")["speaker"].nunique().to_dict()
    print(f"gather: {count} partitions, {summary['accepted']} of {summary['clips']} clips accepted, "
          f"{len(manifest)} with features; speakers per split {counts}")


if __name__ == "__main__":
    run_stage(main)
