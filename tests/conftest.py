"""Shared fixtures: the project root, the real media in ../shared/data/realsample, small generated clips."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from s2f.io.media import ffmpeg_exe
from tests.s3_server import s3_env, s3_server  # noqa: F401  (fixtures: a moto S3 server on 127.0.0.1)

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
RELIABILITY = Path(__file__).resolve().parent / "reliability"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/reliability/ is part of the reliability suite (`pytest -m reliability`)."""
    for item in items:
        if RELIABILITY in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(scope="session")
def realsample() -> Path:
    """The shared real talking-face clips (`S2F_REALSAMPLE` overrides ../shared/data/realsample)."""
    path = Path(os.environ.get("S2F_REALSAMPLE", ROOT.parent / "shared" / "data" / "realsample"))
    if not (path / "manifest.csv").is_file():
        pytest.fail(f"real media not found at {path}: clone beside ../shared or set S2F_REALSAMPLE")
    return path


@pytest.fixture(scope="session")
def realsample_manifest(realsample: Path) -> pd.DataFrame:
    return pd.read_csv(realsample / "manifest.csv")


def ffmpeg(*args: str) -> None:
    """Run the project's ffmpeg (for making bad inputs in tests); fail loudly if it fails."""
    proc = subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-nostdin", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="session")
def demo_clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A tiny real demo corpus: 3 speakers × 2 mp4 clips of 3-4.5 s (face on screen, voice on the audio track)."""
    from s2f.config import DemoSourceParams
    from s2f.demo.corpus import generate_demo_corpus

    out = tmp_path_factory.mktemp("demo")
    manifest = generate_demo_corpus(DemoSourceParams(speakers=3, clips_per_speaker=2, min_seconds=3.0, max_seconds=4.5, seed=5), out, workers=1)
    return out, manifest
