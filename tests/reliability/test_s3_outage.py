"""With `output_uri` on S3 and the endpoint down, nothing is lost silently: the shards not uploaded are listed in a
ledger in the work folder, the stage's metrics count them, and `s2f upload-pending` finishes them later."""

from __future__ import annotations

import json
import subprocess
import sys

import boto3

from s2f.config import PreprocessParams
from s2f.preprocess import pending_uploads, preprocess_corpus
from tests.conftest import ROOT
from tests.s3_server import free_port


def test_uploads_missed_during_an_outage_are_recorded_and_finished_later(s3_env, demo_clips, tmp_path, monkeypatch):
    endpoint, bucket = s3_env
    raw_dir, manifest = demo_clips
    work = tmp_path / "work"
    params = PreprocessParams(shard_size=2, output_uri=f"s3://{bucket}/shards")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # S3 down
    accepted, _ = preprocess_corpus(manifest, raw_dir, tmp_path / "out", params, workers=1, work_dir=work)
    shards = sorted(accepted["shard"].unique())
    assert [row["shard"] for row in pending_uploads(work)] == shards

    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # S3 back
    done = subprocess.run([sys.executable, "-m", "s2f.cli", "upload-pending", "--work", str(work)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"{len(shards)} of {len(shards)} shards uploaded" in done.stdout
    assert pending_uploads(work) == []
    listed = boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket=bucket, Prefix="shards/")
    assert sorted(o["Key"] for o in listed.get("Contents", [])) == [f"shards/{s}" for s in shards]
    record = json.loads((work / shards[0].replace(".npz", ".done.json")).read_text())
    assert record["uploaded_to"] == params.output_uri


def test_the_stage_metrics_count_pending_uploads(s3_env, demo_clips, tmp_path, monkeypatch):
    """`dvc repro` would lock a stage that exits 0, so the count must be in its metrics file."""
    _, bucket = s3_env
    raw_dir, manifest = demo_clips
    params = tmp_path / "params.yaml"
    params.write_text(f"preprocess:\n  shard_size: 2\n  workers: 1\n  output_uri: s3://{bucket}/x\n")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    (tmp_path / "raw2").mkdir()
    (tmp_path / "raw2" / "clips").symlink_to(raw_dir / "clips")
    manifest.to_csv(tmp_path / "raw2" / "manifest.csv", index=False)
    proc = subprocess.run([sys.executable, "-m", "s2f.stages.preprocess", "--params", str(params),
                           "--raw", str(tmp_path / "raw2"), "--out", str(tmp_path / "out"),
                           "--work", str(tmp_path / "work"), "--summary", str(tmp_path / "summary.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["pending_uploads"] == len(pending_uploads(tmp_path / "work")) > 0
    assert "s2f upload-pending" in proc.stdout
