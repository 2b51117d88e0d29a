"""summary: the evaluation table in a terminal (at most 100 columns): R@1 and R@10 beside chance, 1:2 matching,
feature cosine and the share of generated faces dlib finds, for every model family at 3 s and 6 s of voice.

`make demo` ends with it; `reports/metrics.json` keeps every metric.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from s2f.report_summary import summary_table
from s2f.stages.common import DefaultsHelpFormatter


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="s2f summary", description=__doc__.split("\n\n")[0],
                                     formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--metrics", type=Path, default=Path("reports/metrics.json"),
                        help="the evaluation report `dvc repro` (the evaluate stage) writes")
    args = parser.parse_args(argv)
    try:
        report = json.loads(args.metrics.read_text())
    except FileNotFoundError:
        raise SystemExit(f"s2f summary: {args.metrics} does not exist yet; run `dvc repro` (or make demo)") from None
    except json.JSONDecodeError as err:
        raise SystemExit(f"s2f summary: {args.metrics} is not JSON ({err})") from None
    print(summary_table(report))


if __name__ == "__main__":
    main()
