"""features: face features (dlib 128-D descriptor by default) and 68 landmarks per sample; the speaker split.

Reads the `features` section. Writes OUT/features-*.npz and OUT/manifest.parquet (with a `split` column).
"""

from __future__ import annotations

from pathlib import Path

from s2f.config import FeaturesParams, resolve_workers
from s2f.features import compute_features
from s2f.stages.common import load_params, stage_parser


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--pre", type=Path, default=Path("data/preprocessed"))
    parser.add_argument("--out", type=Path, default=Path("data/features"))
    args = parser.parse_args(argv)
    params: FeaturesParams = load_params("features", args.params)
    manifest = compute_features(args.pre, args.out, params, resolve_workers(params.workers))
    counts = manifest.groupby("split")["speaker"].nunique().to_dict()
    print(f"features: {len(manifest)} samples, {params.backend} backend, speakers per split {counts}")


if __name__ == "__main__":
    main()
