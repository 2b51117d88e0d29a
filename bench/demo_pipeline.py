"""Benchmark the foundation: `dvc repro` of the demo pipeline from a clean clone, retrieval against chance, no-op repro.

Usage: `make bench` (or `.venv/bin/python bench/demo_pipeline.py [--keep DIR]`). Clones the committed HEAD into a
scratch directory, runs `dvc repro` there with this project's .venv, reads `reports/metrics.json`, runs `dvc repro`
again, and prints a table. The baseline of each retrieval number (chance = K / gallery size) comes from the same run.
Results also go to bench/results/demo_pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from report import exit_on_missed_targets, print_table, save_results  # noqa: E402


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="clone into this directory and keep it (default: a temporary one)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="s2f-bench-"))
    if work.exists():
        shutil.rmtree(work)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(work)], check=True)

    first, log = timed([sys.executable, "-m", "dvc", "repro"], work)
    stages_run = log.count("Running stage")
    stages = len(yaml.safe_load((work / "dvc.lock").read_text())["stages"])  # foreach items one by one
    report = json.loads((work / "reports/metrics.json").read_text())
    metrics = report["speech2face"]["retrieval"]["6s"] | report["speech2face"]["features"]["6s"]
    second, log2 = timed([sys.executable, "-m", "dvc", "repro"], work)
    noop_runs = log2.count("Running stage")

    rows = [
        ("dvc repro, clean clone (s)", f"{first:.0f}", "≤ 900", f"{stages_run} of {stages} stages run",
         first <= 900 and stages_run == stages),
        ("second dvc repro (s)", f"{second:.1f}", "< 10, no stage", f"{noop_runs} stages run", second < 10 and noop_runs == 0),
        ("gallery size (held-out speakers, 6 s voice)", f"{metrics['gallery_size']}", "", "", True),
    ]
    for k, factor in ((1, 3), (2, None), (5, None), (10, 2)):
        recall, chance = metrics[f"recall_at_{k}"], metrics[f"chance_at_{k}"]
        target = f"≥ {factor}× chance" if factor else ""
        ok = recall >= factor * chance if factor else True
        rows.append((f"recall@{k}", f"{recall:.3f}", target, f"chance {chance:.3f} ({recall / chance:.1f}×)", ok))
    rows += [(f"{k} (pred vs true feature)", f"{metrics[k]:.3f}", "", "", True)
             for k in ("cosine_mean", "l1_mean", "l2_mean")]

    print_table(rows)
    save_results("demo_pipeline", {"repro_seconds": first, "noop_repro_seconds": second, "stages_run": stages_run,
                                   "noop_stages_run": noop_runs, "metrics": report, "cores": os.cpu_count()})
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    exit_on_missed_targets(rows)


if __name__ == "__main__":
    main()
