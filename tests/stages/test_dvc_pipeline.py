"""A real `dvc repro` of all six stages on a tiny demo configuration, in a fresh git repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

TINY = {
    "data": {"demo": {"speakers": 6, "clips_per_speaker": 2, "min_seconds": 3.0, "max_seconds": 4.0}, "workers": 2},
    "preprocess": {"workers": 2},
    "features": {"workers": 2},
    "train_decoder": {"epochs": 2, "batch_size": 4, "image_size": 16, "texture_grid": 4, "texture_channels": 32,
                      "hidden": 32, "landmark_hidden": 16, "proxy": {"channels": 4, "epochs": 1}},
    "train_encoder": {"epochs": 2, "batch_size": 4, "crop_seconds": 1.0,
                      "model": {"blocks": [{"channels": 4, "time_pool": True, "freq_stride": 4}],
                                "last_channels": 4, "hidden": 16}},
    "evaluate": {"ks": [1, 2], "grid_speakers": 2, "craniofacial_max": 6},
}


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("s2f-repo")
    shutil.copytree(ROOT / "s2f", repo / "s2f", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / ".dvc", repo / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp"))
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(ROOT / name, repo / name)
    params = _merge(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    _run(["git", "init", "-q"], repo)
    _run([*git, "add", "-A"], repo)
    _run([*git, "commit", "-qm", "tiny"], repo)
    _run([sys.executable, "-m", "dvc", "repro"], repo)
    return repo


def test_repro_runs_every_stage_and_writes_the_reports(repo):
    report = json.loads((repo / "reports/metrics.json").read_text())
    for seconds in ("3s", "6s"):
        retrieval, features = report["retrieval"][seconds], report["features"][seconds]
        assert retrieval["gallery_size"] == 3  # 6 speakers, half held out: fewer than 100, so all of them
        assert retrieval["chance_at_1"] == pytest.approx(1 / 3)
        assert 0.0 <= retrieval["recall_at_1"] <= retrieval["recall_at_2"] <= 1.0
        assert set(features) == {"cosine_mean", "l1_mean", "l2_mean"}
    assert report["gender"]["labelled"] == 0 and "reason" in report["gender"]  # the demo corpus has no labels
    assert report["craniofacial"]["samples"] == 6 and "nose_width" in report["craniofacial"]["voice_vs_face_decoded"]
    assert (repo / "data/features/identity_head.pt").is_file()
    assert (repo / "reports/face_grid.png").stat().st_size > 0
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"download", "preprocess", "features", "train_decoder", "train_encoder", "evaluate"}


def test_training_and_evaluation_are_in_the_mlflow_store(repo):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlruns.db'}")
    experiment = client.get_experiment_by_name("speech2face")
    runs = client.search_runs([experiment.experiment_id])
    by_stage = {r.data.tags["stage"]: r for r in runs}
    assert set(by_stage) == {"train_decoder", "train_encoder", "evaluate"}
    assert len(client.get_metric_history(by_stage["train_encoder"].info.run_id, "loss_total")) == 2  # per epoch
    assert "retrieval.6s.recall_at_1" in by_stage["evaluate"].data.metrics
    for term in ("loss_decoder_l1", "loss_normalized_l2", "loss_distill", "loss_total"):
        assert len(client.get_metric_history(by_stage["train_encoder"].info.run_id, term)) == 2, term
    for term in ("loss_texture_l1", "loss_landmark_mse", "loss_identity", "proxy_loss_total"):
        assert client.get_metric_history(by_stage["train_decoder"].info.run_id, term), term
    encoder_files = {f.path for f in client.list_artifacts(by_stage["train_encoder"].info.run_id, "model")}
    assert encoder_files == {"model/voice_encoder.pt", "model/voice_encoder.json"}


def test_second_repro_runs_nothing(repo):
    out = _run([sys.executable, "-m", "dvc", "repro"], repo).stdout
    assert "Running stage" not in out
    assert "up to date" in out


def test_params_change_reruns_only_downstream(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["evaluate"]["grid_speakers"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run([sys.executable, "-m", "dvc", "repro"], repo).stdout
    assert "Running stage 'evaluate'" in out
    assert "Running stage 'train_encoder'" not in out and "Running stage 'download'" not in out
