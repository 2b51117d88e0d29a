"""collect: the download partitions (`download@K`) merged into the raw corpus `preprocess` reads, then validated.

Reads the `data` section (partitions). Writes OUT/manifest.csv (the partitions' rows in the source's order: byte for
byte what one unpartitioned download writes), the media linked from the partitions, OUT/validation/manifest.json
(the manifest's Great Expectations verdict; GX's full result in WORK/gx/) and, for AVSpeech, OUT/fetch_summary.json
(the partitions' ledgers totalled).
"""

from __future__ import annotations

from pathlib import Path

from s2f.config import DataParams
from s2f.partitions import MissingPartition
from s2f.sources.collect import collect, partition_dirs
from s2f.stages.common import load_params, run_stage, stage_parser, validate_manifest


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--parts", type=Path, default=Path("data/parts/raw"), help="download@K wrote PARTS/K")
    parser.add_argument("--out", type=Path, default=Path("data/raw"),
                        help="the merged corpus: clips of every download partition and one manifest.csv")
    parser.add_argument("--work", type=Path, default=Path("data/interim/download"),
                        help="GX's full validation result goes to WORK/gx/")
    args = parser.parse_args(argv)
    params: DataParams = load_params("data", args.params)
    try:
        manifest = collect(partition_dirs(args.parts, len(params.partitions)), args.out)
    except MissingPartition as err:
        raise SystemExit(f"collect: {err}") from None
    validate_manifest(manifest, args.out / "validation", args.work / "gx")
    print(f"collect: {len(params.partitions)} partitions, {len(manifest)} clips of "
          f"{manifest['speaker'].nunique()} speakers from {params.source!r}")


if __name__ == "__main__":
    run_stage(main)
