"""preprocess: clips → 6 s 16 kHz mono waveforms and 224×224 face crops in validated shards; rejects to quarantine.

Reads the `preprocess` section. Writes OUT/shard-*.npz, OUT/manifest.parquet, OUT/quarantine.csv, OUT/validation/
(each shard's deterministic Great Expectations verdict) and a summary metric (accepted count, rejections by reason,
shards still to upload). With --partition K (the pipeline's `preprocess@K`) only that partition's shards are made
and OUT is a part for `gather`. Finished shards, their records, GX's full results and Data Docs (WORK/gx/) are kept
in WORK between runs, so a killed run resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path

from s2f.config import PreprocessParams, resolve_workers
from s2f.partitions import Partition
from s2f.preprocess import TooManyBadShards, pending_uploads, preprocess_corpus
from s2f.sources import read_clip_manifest
from s2f.stages.common import load_params, run_stage, stage_parser, write_json


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--raw", type=Path, default=Path("data/raw"),
                        help="the downloaded corpus: manifest.csv and its clips")
    parser.add_argument("--out", type=Path, default=Path("data/preprocessed"),
                        help="validated sample shards, manifest.parquet and quarantine.csv")
    parser.add_argument("--work", type=Path, default=Path("data/interim/preprocess"),
                        help="finished shards survive here between runs (DVC empties OUT before the stage runs); "
                             "partitions may share it")
    parser.add_argument("--partition", type=int, default=None,
                        help="make only partition K of the `partitions` param (shard k belongs to k mod P); "
                             "OUT is then a part that `gather` merges, and --summary is not written")
    parser.add_argument("--summary", type=Path, default=Path("reports/preprocess.json"),
                        help="accepted and rejected counts (a DVC metrics file)")
    args = parser.parse_args(argv)
    params: PreprocessParams = load_params("preprocess", args.params)
    manifest = read_clip_manifest(args.raw / "manifest.csv")
    try:
        partition = None if args.partition is None else Partition(args.partition, len(params.partitions))
    except ValueError as err:
        raise SystemExit(f"preprocess: {err}") from None
    try:
        accepted, quarantined = preprocess_corpus(manifest, args.raw, args.out, params,
                                                  resolve_workers(params.workers), work_dir=args.work,
                                                  partition=partition)
    except TooManyBadShards as err:
        raise SystemExit(f"preprocess: {err}") from None
    rejected = quarantined["reason"].value_counts().to_dict()
    pending = len(pending_uploads(args.work))
    if partition is None:
        if accepted.empty:
            raise SystemExit(f"preprocess: all {len(manifest)} clips were rejected; see {args.out / 'quarantine.csv'}")
        write_json(args.summary, {"clips": len(manifest), "accepted": len(accepted), "rejected": rejected,
                                  "pending_uploads": pending})
    print(f"preprocess{f' ({partition})' if partition else ''}: {len(accepted)} accepted, {len(quarantined)} "
          f"quarantined {rejected or ''}"
          + (f"; {pending} shards still to upload (s2f upload-pending --work {args.work})" if pending else ""))


if __name__ == "__main__":
    run_stage(main)
