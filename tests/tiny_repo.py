"""A fresh git repository holding this project with a tiny demo configuration: what the end-to-end tests build.

The configuration keeps every stage real (ffmpeg, dlib, training, evaluation, registration) but small enough for a
2-core CI machine: 6 speakers × 2 clips, 2 epochs, toy widths. Every trainer streams its split from the shards
(`loop.in_memory_mb: 0`), the path a real corpus takes; the demo's small splits are read into memory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT

TINY = {
    "data": {"demo": {"speakers": 6, "clips_per_speaker": 2, "min_seconds": 3.0, "max_seconds": 4.0}, "workers": 2},
    "preprocess": {"workers": 2},
    "features": {"workers": 2, "split": {"test_fraction": 0.5}},  # 3 held-out speakers: galleries of 3
    "train_decoder": {"epochs": 2, "batch_size": 4, "image_size": 16, "texture_grid": 4, "texture_channels": 32,
                      "hidden": 32, "landmark_hidden": 16, "proxy": {"channels": 4, "epochs": 1},
                      "loop": {"in_memory_mb": 0}},
    "train_encoder": {"epochs": 2, "batch_size": 4, "crop_seconds": 1.0, "loop": {"in_memory_mb": 0},
                      "model": {"blocks": [{"channels": 4, "time_pool": True, "freq_stride": 4}],
                                "last_channels": 4, "hidden": 16}},
    "train_gan": {"wen2019": {"width": 0.02, "pretrain_epochs": 1, "epochs": 2, "batch_size": 2},
                  "wav2pix": {"width": 0.02, "epochs": 2, "batch_size": 2}, "loop": {"in_memory_mb": 0}},
    "evaluate": {"ks": [1, 2], "grid_speakers": 2, "craniofacial_max": 6},
    # 6 queries over galleries of 3 cannot show a 2-epoch model better than chance: promotion is tested without the
    # floor here, and with it in tests/test_promotion.py
    "promote": {"chance_p_value": None},
}
PROJECT_FILES = ("dvc.yaml", ".dvcignore", ".gitignore", "prefect.yaml")
PROJECT_DIRS = ("s2f", "flows", ".dvc")


def merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def tool_env(**extra: str) -> dict[str, str]:
    """This interpreter's bin first on PATH, telemetry off, no inherited MLflow store unless given."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env | extra


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run a command; fail the test with its output when it fails."""
    proc = subprocess.run(cmd, cwd=cwd, env=env or tool_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def commit_all(repo: Path, message: str) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    run([*git, "add", "-A"], repo)
    run([*git, "commit", "-qm", message], repo)


def make_tiny_repo(repo: Path, overrides: dict | None = None) -> Path:
    """Copy the project's code and pipeline into `repo`, shrink params.yaml, and commit it in a new git repository."""
    for name in PROJECT_DIRS:
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "cache", "tmp",
                                                                                 "config.local"))
    for name in PROJECT_FILES:
        shutil.copy(ROOT / name, repo / name)
    params = merge(merge(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY), overrides or {})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], repo)
    commit_all(repo, "tiny")
    return repo
