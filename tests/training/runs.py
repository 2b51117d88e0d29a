"""Tiny training runs as their own processes, for the resume (SIGKILL) and DDP (torchrun) tests: both sides.

The process side (`main`, used by `run_training` and `run_gan`): the arguments `--out DIR [--checkpoint FILE]
[--kill-after-epoch K]`, a log that SIGKILLs the process once epoch K is logged, and the results: DIR/weights-rank<R>.pt
(every rank), DIR/curve.json and, when the run has one, DIR/summary.json (rank 0). The test side: `run` a Python
process from the project root, `weights`, `free_port` and `assert_killed_run_resumes`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from s2f.training.distributed import Runtime, setup_runtime, teardown_runtime
from s2f.training.loop import LogFn

ROOT = Path(__file__).resolve().parents[2]  # not tests.conftest's: the runs would import the fixtures' modules

# (the parsed arguments, the runtime, the log) → the trained model and, optionally, a summary to write
Train = Callable[[argparse.Namespace, Runtime, LogFn], tuple[nn.Module, dict | None]]


def main(train: Train, parser: argparse.ArgumentParser | None = None) -> None:
    """Parse `parser`'s arguments and the common ones, join `torchrun`'s process group (or run alone), train and
    write the results."""
    parser = parser or argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--kill-after-epoch", type=int)
    args = parser.parse_args()
    runtime = setup_runtime()
    rows = []

    def log(epoch: int, row: dict) -> None:
        rows.append(row)
        if args.kill_after_epoch is not None and epoch == args.kill_after_epoch:
            os.kill(os.getpid(), signal.SIGKILL)  # a real kill: no cleanup, no atexit, mid-run

    model, summary = train(args, runtime, log)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out / f"weights-rank{runtime.rank}.pt")
    if runtime.is_main:
        (args.out / "curve.json").write_text(json.dumps(rows))
        if summary is not None:
            (args.out / "summary.json").write_text(json.dumps(summary))
    teardown_runtime(runtime)


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python ARGS` from the project root, one thread per process (the tests run several at once)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_killed_run_resumes(tmp_path: Path, *args: str, kill_after_epoch: int) -> tuple[dict, list[dict], Path]:
    """Run `python -m ARGS` straight through, then killed once epoch `kill_after_epoch` is logged and run again from
    its checkpoint: the two must end with equal weights and curves. Returns those weights, the curve and the
    checkpoint (tmp_path/straight, tmp_path/resumed hold the two runs' results, tmp_path/resumed.out what the
    resumed run printed)."""
    straight = run("-m", *args, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    ckpt = tmp_path / "ckpt.pt"
    killed = run("-m", *args, "--out", str(tmp_path / "resumed"), "--checkpoint", str(ckpt),
                 "--kill-after-epoch", str(kill_after_epoch))
    assert killed.returncode == -signal.SIGKILL
    assert ckpt.is_file() and not (tmp_path / "resumed").exists()
    resumed = run("-m", *args, "--out", str(tmp_path / "resumed"), "--checkpoint", str(ckpt))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from step" in resumed.stdout
    (tmp_path / "resumed.out").write_text(resumed.stdout)
    a, b = weights(tmp_path / "straight/weights-rank0.pt"), weights(tmp_path / "resumed/weights-rank0.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    curve_a = json.loads((tmp_path / "straight/curve.json").read_text())
    curve_b = json.loads((tmp_path / "resumed/curve.json").read_text())
    assert curve_a == curve_b  # the replayed history plus the epochs after the resume
    return a, curve_a, ckpt
