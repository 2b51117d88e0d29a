"""Resume verifies what it reuses: a done-record carries its files' size and sha256; a bad or missing shard is
redone, never republished; a killed `features` run resumes with only its unfinished shards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from s2f.config import PreprocessParams, load_section
from s2f.features import compute_features
from s2f.io.shards import ShardError, read_shard
from s2f.preprocess import preprocess_corpus
from tests.tiny_repo import make_tiny_repo, run, tool_env

PARAMS = PreprocessParams(shard_size=2)


@pytest.fixture
def processed(tmp_path, demo_clips) -> tuple[Path, Path, pd.DataFrame]:
    raw_dir, manifest = demo_clips
    work = tmp_path / "work"
    preprocess_corpus(manifest, raw_dir, tmp_path / "out", PARAMS, workers=1, work_dir=work)
    return raw_dir, work, manifest


def _rerun(raw_dir: Path, tmp_path: Path, manifest: pd.DataFrame) -> pd.DataFrame:
    accepted, _ = preprocess_corpus(manifest, raw_dir, tmp_path / "out", PARAMS, workers=1, work_dir=tmp_path / "work")
    return accepted


def test_a_truncated_work_shard_is_redone_not_republished(processed, tmp_path, capsys):
    raw_dir, work, manifest = processed
    good = (work / "shard-00001.npz").read_bytes()
    os.truncate(work / "shard-00001.npz", 5000)
    capsys.readouterr()
    accepted = _rerun(raw_dir, tmp_path, manifest)
    assert "shard-00001.npz: size 5000 B" in capsys.readouterr().out
    assert (tmp_path / "out" / "shard-00001.npz").read_bytes() == good  # rebuilt, byte-identical
    assert set(accepted["shard"]) >= {"shard-00001.npz"}
    read_shard(tmp_path / "out" / "shard-00001.npz")  # readable


def test_a_deleted_work_shard_is_redone(processed, tmp_path, capsys):
    raw_dir, work, manifest = processed
    good = (work / "shard-00000.npz").read_bytes()
    (work / "shard-00000.npz").unlink()
    _rerun(raw_dir, tmp_path, manifest)
    assert "shard-00000.npz: missing" in capsys.readouterr().out
    assert (tmp_path / "out" / "shard-00000.npz").read_bytes() == good


def test_an_untouched_shard_is_reused(processed, tmp_path):
    raw_dir, work, manifest = processed
    stamp = (work / "shard-00000.npz").stat().st_mtime_ns
    _rerun(raw_dir, tmp_path, manifest)
    assert (work / "shard-00000.npz").stat().st_mtime_ns == stamp


def test_rewritten_media_with_the_same_bytes_keeps_the_shards(processed, tmp_path):
    """Records are keyed by content, not mtimes: `dvc repro -f download` rewrites identical clips."""
    raw_dir, work, manifest = processed
    stamp = (work / "shard-00000.npz").stat().st_mtime_ns
    for clip in manifest["clip"]:
        path = raw_dir / clip
        data = path.read_bytes()
        path.unlink()
        path.write_bytes(data)
    _rerun(raw_dir, tmp_path, manifest)
    assert (work / "shard-00000.npz").stat().st_mtime_ns == stamp


def test_a_truncated_shard_names_its_file(tmp_path, processed):
    _, work, _ = processed
    bad = tmp_path / "bad.npz"
    bad.write_bytes((work / "shard-00000.npz").read_bytes()[:4000])
    with pytest.raises(ShardError, match="bad.npz: not a readable shard"):
        read_shard(bad)
    with pytest.raises(ShardError, match="nope.npz: missing"):
        read_shard(tmp_path / "nope.npz")


@pytest.mark.slow
def test_a_features_stage_killed_under_dvc_repro_resumes_with_only_the_unfinished_shards(tmp_path):
    """DVC empties `data/parts/features/0` before it reruns `features@0`; the shard engine's records in the work
    folder (`data/interim/features/0`) survive, so the rerun redoes only the shards the killed run had not
    finished, and `gather` then publishes exactly what an uninterrupted run makes."""
    repo = make_tiny_repo(tmp_path / "repo", {"preprocess": {"shard_size": 2}, "features": {"workers": 1}})
    run([sys.executable, "-m", "dvc", "repro", "preprocess@0"], repo)
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "features@0"], cwd=repo, env=tool_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    work = repo / "data/interim/features/0"
    first = work / "features-00000.done.json"
    deadline = time.monotonic() + 300
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # dvc and the stage it runs
    proc.wait()
    assert first.exists() and not (work / "features-00005.done.json").exists(), "the run was not killed mid-way"
    stamp = (work / "features-00000.npz").stat().st_mtime_ns
    resumed = run([sys.executable, "-m", "dvc", "repro", "gather"], repo)
    done = int(resumed.stdout.split(" already done")[0].rsplit(" ", 1)[1])
    assert 1 <= done < 6, resumed.stdout
    assert (work / "features-00000.npz").stat().st_mtime_ns == stamp  # reused, not redone
    fresh = compute_features(repo / "data/preprocessed", tmp_path / "fresh",
                             load_section("features", repo / "params.yaml"), 1)  # the repo's split
    pd.testing.assert_frame_equal(pd.read_parquet(repo / "data/features/manifest.parquet"), fresh)
    for name in sorted(p.name for p in (tmp_path / "fresh").glob("features-*.npz")):
        assert (repo / "data/features" / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes()
        verdict = f"validation/{name.replace('.npz', '.json')}"
        assert (repo / "data/features" / verdict).read_bytes() == (tmp_path / "fresh" / verdict).read_bytes()
