"""What every benchmark prints and saves: a markdown table (measure, value, target, baseline, pass) and a JSON file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def print_table(rows: list[tuple]) -> None:
    """Rows of (measure, value, target, baseline measured in the same run, passed)."""
    header = ("measure", "value", "target", "baseline (same run)")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(4)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " | pass |")
    print("|-" + "-|-".join("-" * w for w in widths) + "-|------|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row[:4], widths)) + f" | {'yes' if row[4] else 'NO':4} |")


def save_results(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(payload, indent=2, default=str))
    return out


def exit_on_missed_targets(rows: list[tuple]) -> None:
    if not all(r[4] for r in rows):
        sys.exit(1)
