"""upload-pending: copy the shards a stage could not upload to `output_uri` (S3 down) now, from its work folder.

The `preprocess` stage lists every finished shard it failed to upload in WORK/pending_uploads.json (and counts them
in reports/preprocess.json as `pending_uploads`); its outputs are complete, so DVC will not run it again. This command
finishes those uploads and empties the ledger; the stage's next run would try them too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from s2f.preprocess import finish_pending_uploads, pending_uploads
from s2f.stages.common import DefaultsHelpFormatter


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="s2f upload-pending", description=__doc__.strip().splitlines()[0],
                                     formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("data/interim/preprocess"),
                        help="the stage's work folder, which holds pending_uploads.json and the shards")
    args = parser.parse_args(argv)
    before = pending_uploads(args.work)
    if not before:
        print(f"upload-pending: nothing pending in {args.work}")
        return
    left = finish_pending_uploads(args.work)
    print(f"upload-pending: {len(before) - len(left)} of {len(before)} shards uploaded")
    if left:
        raise SystemExit(f"upload-pending: {len(left)} still pending ({', '.join(r['shard'] for r in left)}); "
                         "run again when the endpoint is reachable")


if __name__ == "__main__":
    main()
