"""One DVC stage in a checkout: `dvc repro --pull STAGE`, then the pushes that publish what it built.

`--pull` fetches missing dependencies and the run-cache from the remote, so an upstream stage that ran on another
worker is restored, not recomputed. `dvc push --run-cache` then publishes this checkout's outputs and run-cache
entries. DVC 3.67 leaves one gap: the run-cache records `cache: false` outputs (metrics, plots) by hash, but
`push --run-cache` does not upload their objects, so another checkout would miss them and rerun the stage. The
objects are in the local cache (the run-cache put them there), so `push_uncached_outputs` uploads them explicitly.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_RAN = re.compile(r"Running stage '([^']+)'")
_RESTORED = re.compile(r"Stage '([^']+)' is cached - skipping run")
_UNCHANGED = re.compile(r"Stage '([^']+)' didn't change, skipping")


class StageFailed(RuntimeError):
    pass


@dataclass
class StageReport:
    """What `dvc repro --pull STAGE` did in one checkout, stage by stage (upstream stages included)."""

    stage: str
    ran: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"stage": self.stage, "ran": self.ran, "restored": self.restored, "unchanged": self.unchanged,
                "seconds": round(self.seconds, 1)}


def tool_env() -> dict[str, str]:
    """The environment for DVC and the stages: this interpreter's bin first (stages run `python -m s2f.stages…`)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")  # a stage's lines leave it as printed, not in 8 kB blocks at its end
    return env


def _run(cmd: list[str], cwd: Path, on_line: Callable[[str], None] | None = None) -> str:
    """Run `cmd`; its output, and each line of it as it comes to `on_line` (a flow's logger: a stage's progress
    reaches the Prefect flow-run log while the stage runs, not when it ends)."""
    lines: list[str] = []
    with subprocess.Popen(cmd, cwd=cwd, env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          bufsize=1, errors="replace") as proc:
        for line in proc.stdout:
            lines.append(line)
            if on_line is not None and line.strip():
                on_line(line.rstrip())
    output = "".join(lines)
    if proc.returncode != 0:
        raise StageFailed(f"{' '.join(cmd)} failed in {cwd} (exit {proc.returncode}):\n{output[-4000:]}")
    return output


def parse_repro(stage: str, output: str) -> StageReport:
    return StageReport(stage, _RAN.findall(output), _RESTORED.findall(output), _UNCHANGED.findall(output))


def repro(checkout: Path, stage: str, on_line: Callable[[str], None] | None = None) -> tuple[StageReport, str]:
    start = time.perf_counter()
    output = _run(["dvc", "repro", "--pull", stage], checkout, on_line)
    report = parse_repro(stage, output)
    report.seconds = time.perf_counter() - start
    return report, output


def push_uncached_outputs(checkout: Path) -> int:
    """Upload the cache objects of `cache: false` outputs (see the module docstring); returns how many were sent."""
    from dvc.repo import Repo

    with Repo(str(checkout)) as repo:
        wanted = [out.hash_info for stage in repo.index.stages for out in stage.outs
                  if not out.use_cache and out.hash_info and out.hash_info.value]
        present = [h for h in wanted if repo.cache.local.exists(h.value)]
        return len(repo.cloud.push(present).transferred) if present else 0


def publish(checkout: Path) -> str:
    """Push outputs and run-cache to the default remote."""
    output = _run(["dvc", "push", "--run-cache"], checkout)
    sent = push_uncached_outputs(checkout)
    return output + f"\n{sent} uncached output object(s) pushed\n"
