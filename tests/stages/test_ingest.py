"""`s2f ingest`: one command from a real corpus to validated shards, features and a summary; a rerun resumes."""

import json
import subprocess
import sys

import pandas as pd

from s2f.io.shards import read_shard
from tests.conftest import ROOT


def _ingest(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "s2f.cli", "ingest", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_ingest_realsample_accepts_its_single_face_clips(tmp_path, realsample):
    out = tmp_path / "rs"
    proc = _ingest("--manifest", str(realsample / "manifest.csv"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["clips"] == 33
    assert summary["accepted"] + sum(summary["rejected"].values()) == 33
    assert summary["accepted"] >= 30 and summary["speakers"] >= 27
    features = pd.read_parquet(out / "features" / "manifest.parquet")
    assert len(features) == summary["accepted"] and set(features["split"]) == {"train", "test"}
    shard = read_shard(out / "features" / features["features_shard"].iloc[0])
    assert shard["embedding"].shape[1] == 128 and shard["landmarks"].shape[1:] == (68, 2)
    assert json.loads((out / "preprocessed" / "validation" / "summary.json").read_text())["failed_validation"] == []
    assert (out / "preprocessed" / "gx" / "docs" / "index.html").is_file()

    stamp = (out / "preprocessed" / "shard-00000.npz").stat().st_mtime_ns
    again = _ingest("--manifest", str(realsample / "manifest.csv"), "--out", str(out))
    assert again.returncode == 0 and "1 already done, 0 to do" in again.stdout
    assert (out / "preprocessed" / "shard-00000.npz").stat().st_mtime_ns == stamp
    assert json.loads((out / "summary.json").read_text())["accepted"] == summary["accepted"]


def test_ingest_names_a_missing_manifest(tmp_path):
    proc = _ingest("--manifest", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o"))
    assert proc.returncode != 0 and "nope.csv" in proc.stderr and "Traceback" not in proc.stderr
