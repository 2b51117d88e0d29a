"""Two `s2f ingest` into one --out: the second refuses at once, naming the folder and the first one's PID; the first
finishes as if alone."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from s2f.stages.ingest import LOCK_NAME
from tests.conftest import ROOT

CLIPS = 8  # ~25 s of ingest on one worker: long enough for a second process to start while it runs


def _small_corpus(realsample: Path, folder: Path) -> Path:
    rows = pd.read_csv(realsample / "manifest.csv").head(CLIPS)
    for clip in rows["clip"]:
        (folder / clip).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(realsample / clip, folder / clip)
    rows[["clip", "speaker"]].to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


def _ingest(manifest: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "s2f.cli", "ingest", "--manifest", str(manifest), "--out", str(out),
            "--workers", "1", "--params", str(out.parent / "absent.yaml")]


def _wait_until_started(first: subprocess.Popen, out: Path, timeout: float = 120) -> None:
    """Until the first run writes under OUT (it holds the lock by then); fails if it ends or stalls first."""
    deadline = time.monotonic() + timeout
    while not (out / "raw").exists():
        assert first.poll() is None, f"the first ingest ended early: {first.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "the first ingest did not start writing"
        time.sleep(0.1)


def test_second_ingest_into_the_same_out_refuses_at_once(tmp_path, realsample):
    manifest, out = _small_corpus(realsample, tmp_path / "corpus"), tmp_path / "out"
    first = subprocess.Popen(_ingest(manifest, out), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        _wait_until_started(first, out)
        started = time.monotonic()
        second = subprocess.run(_ingest(manifest, out), cwd=ROOT, capture_output=True, text=True, timeout=600)
        took = time.monotonic() - started
        assert second.returncode != 0, f"the second ingest ran too:\n{second.stdout[-2000:]}"
        assert first.poll() is None, "the first ingest ended before the second was refused: the test proves nothing"
        assert str(out) in second.stderr and f"pid {first.pid}" in second.stderr, second.stderr[-2000:]
        assert "Traceback" not in second.stderr and "preprocess:" not in second.stdout, second.stderr[-2000:]
        assert took < 20, f"the second ingest took {took:.0f} s to refuse"
        stdout, stderr = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, stderr[-2000:]
    assert json.loads((out / "summary.json").read_text())["clips"] == CLIPS
    with (out / LOCK_NAME).open("r") as lock:  # released with the first run: the next ingest may start
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
