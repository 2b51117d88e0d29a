"""A real `dvc repro` of every stage on a tiny demo configuration, in a fresh git repository."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from tests.tiny_repo import make_tiny_repo, run


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = make_tiny_repo(tmp_path_factory.mktemp("s2f-repo"))
    run([sys.executable, "-m", "dvc", "repro"], repo)
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
    assert set(lock["stages"]) == {"download", "preprocess", "features", "train_decoder", "train_encoder", "evaluate",
                                   "register"}


def test_training_and_evaluation_are_in_the_mlflow_store(repo):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlruns.db'}")
    experiment = client.get_experiment_by_name("speech2face")
    runs = client.search_runs([experiment.experiment_id])
    by_stage = {r.data.tags["stage"]: r for r in runs}
    assert set(by_stage) == {"train_decoder", "train_encoder", "evaluate", "register"}
    assert len(client.get_metric_history(by_stage["train_encoder"].info.run_id, "loss_total")) == 2  # per epoch
    assert "retrieval.6s.recall_at_1" in by_stage["evaluate"].data.metrics
    for term in ("loss_decoder_l1", "loss_normalized_l2", "loss_distill", "loss_total"):
        assert len(client.get_metric_history(by_stage["train_encoder"].info.run_id, term)) == 2, term
    for term in ("loss_texture_l1", "loss_landmark_mse", "loss_identity", "proxy_loss_total"):
        assert client.get_metric_history(by_stage["train_decoder"].info.run_id, term), term
    encoder_files = {f.path for f in client.list_artifacts(by_stage["train_encoder"].info.run_id, "model")}
    assert encoder_files == {"model/voice_encoder.pt", "model/voice_encoder.json"}


def test_register_makes_tagged_challengers_of_all_three_models(repo):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlruns.db'}")
    commit = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    features_md5 = next(o["md5"] for o in lock["features"]["outs"] if o["path"] == "data/features")
    recall = json.loads((repo / "reports/metrics.json").read_text())["retrieval"]["6s"]["recall_at_1"]
    written = json.loads((repo / "reports/registry.json").read_text())["versions"]
    for name in ("speech2face", "s2f-voice-encoder", "s2f-face-decoder"):
        version = client.get_model_version_by_alias(name, "challenger")
        assert str(version.version) == written[name] == "1"
        assert version.tags["git_commit"] == commit
        assert version.tags["dvc.data.features"] == features_md5
        assert float(version.tags["metric.retrieval.6s.recall_at_1"]) == pytest.approx(recall)
    composite = client.get_model_version("speech2face", "1")
    assert composite.tags["component.s2f-voice-encoder"] == "1" and composite.tags["component.s2f-face-decoder"] == "1"


def test_second_repro_runs_nothing(repo):
    out = run([sys.executable, "-m", "dvc", "repro"], repo).stdout
    assert "Running stage" not in out
    assert "up to date" in out


def test_params_change_reruns_only_downstream(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["evaluate"]["grid_speakers"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run([sys.executable, "-m", "dvc", "repro"], repo).stdout
    assert "Running stage 'evaluate'" in out
    assert "Running stage 'train_encoder'" not in out and "Running stage 'download'" not in out
