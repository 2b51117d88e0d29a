"""download: generate (demo) or fetch the raw clips and write their manifest.

Reads the `data` section of params.yaml. Writes OUT/clips/* and OUT/manifest.csv.
"""

from __future__ import annotations

from pathlib import Path

from s2f.config import DataParams
from s2f.io.shards import write_table
from s2f.sources import fetch
from s2f.stages.common import load_params, stage_parser


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--out", type=Path, default=Path("data/raw"))
    args = parser.parse_args(argv)
    params: DataParams = load_params("data", args.params)
    manifest = fetch(params, args.out)
    write_table(args.out / "manifest.csv", manifest)
    print(f"download: {len(manifest)} clips of {manifest['speaker'].nunique()} speakers from {params.source!r}")


if __name__ == "__main__":
    main()
