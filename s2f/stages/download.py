"""download: generate (demo), copy or reference (local) or fetch (avspeech) the raw clips; write their manifest.

Reads the `data` section of params.yaml. Writes OUT/manifest.csv (one row per clip) and, for demo, avspeech and
local with copy_clips, the media under OUT (local media keeps its relative layout). The manifest is validated (unique
safe sample ids, speakers present, face positions in [0, 1]) before anything downstream reads it. With --partition K
(the pipeline's `download@K`) only partition K of the source is fetched, with its own ledger in WORK, and `collect`
merges and validates the partitions.
"""

from __future__ import annotations

from pathlib import Path

from s2f.config import DataParams
from s2f.io.shards import write_table
from s2f.partitions import Partition
from s2f.sources.fetch import fetch
from s2f.stages.common import load_params, run_stage, stage_parser, validate_manifest


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--out", type=Path, default=Path("data/raw"),
                        help="this download's clips and manifest.csv (a partition's own folder under --partition)")
    parser.add_argument("--work", type=Path, default=Path("data/interim/download"),
                        help="AVSpeech's ledger and clips survive here between runs (DVC empties OUT first); "
                        "GX's full validation result goes to WORK/gx/")
    parser.add_argument("--partition", type=int, default=None,
                        help="fetch only partition K of the `partitions` param (demo speaker or source row r in "
                             "partition r mod P) into OUT, for `collect`; WORK is then this partition's own")
    args = parser.parse_args(argv)
    params: DataParams = load_params("data", args.params)
    try:
        partition = None if args.partition is None else Partition(args.partition, len(params.partitions))
        manifest = fetch(params, args.out, args.work, partition)
    except ValueError as err:
        raise SystemExit(f"download: {err}") from None
    if partition is None:
        validate_manifest(manifest, args.out / "validation", args.work / "gx")
    write_table(args.out / "manifest.csv", manifest)
    print(f"download{f' ({partition})' if partition else ''}: {len(manifest)} clips of "
          f"{manifest['speaker'].nunique()} speakers from {params.source!r}")


if __name__ == "__main__":
    run_stage(main)
