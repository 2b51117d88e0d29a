"""A real `dvc repro` of every stage on a tiny demo configuration, in a fresh git repository."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.tiny_repo import make_tiny_repo, run, tool_env


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = make_tiny_repo(tmp_path_factory.mktemp("s2f-repo"))
    run([sys.executable, "-m", "dvc", "repro"], repo)
    (repo.parent / "first-dvc.lock").write_text((repo / "dvc.lock").read_text())  # before later tests change params
    return repo


@pytest.mark.slow
@pytest.mark.reliability
def test_a_second_clone_reproduces_dvc_lock_byte_for_byte(repo, tmp_path):
    """Lineage is reproducible: nothing random or time-stamped inside an output, so another clone with its own
    DVC cache and MLflow store gets the same hash for every data output and model (same machine, same CPU)."""
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    run([sys.executable, "-m", "dvc", "repro"], clone)
    first = yaml.safe_load((repo.parent / "first-dvc.lock").read_text())["stages"]
    second = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]
    differing = [f"{stage}: {out['path']}" for stage in first for out, other in
                 zip(first[stage].get("outs", []), second[stage].get("outs", [])) if out != other]
    assert not differing, f"outputs hashed differently in two clones: {differing}"
    assert (clone / "dvc.lock").read_text() == (repo.parent / "first-dvc.lock").read_text()


def test_repro_runs_every_stage_and_writes_the_reports(repo):
    report = json.loads((repo / "reports/metrics.json").read_text())
    assert set(report) == {"speech2face", "ridge", "wen2019", "wav2pix"}  # one table, keyed by family
    assert report["ridge"]["retrieval"]["6s"]["chance_at_1"] == pytest.approx(1 / 3)  # the baseline's row
    s2f = report["speech2face"]
    for seconds in ("3s_repeated", "6s"):
        retrieval, features = s2f["retrieval"][seconds], s2f["features"][seconds]
        assert retrieval["gallery_size"] == 3  # 6 speakers, half held out: fewer than 100, so all of them
        assert retrieval["chance_at_1"] == pytest.approx(1 / 3)
        assert 0.0 <= retrieval["recall_at_1"] <= retrieval["recall_at_2"] <= 1.0
        assert set(features) == {"cosine_mean", "l1_mean", "l2_mean"}
    assert s2f["gender"]["labelled"] == 0  # the demo corpus has no labels
    assert s2f["craniofacial"]["samples"] == 6 and "nose_width" in s2f["craniofacial"]["voice_vs_face_decoded"]
    for family in ("wen2019", "wav2pix"):  # the GANs' faces measured as images, like Speech2Face's decoded ones
        for section in (report[family], s2f["decoded"]):
            assert section["retrieval"]["6s"]["chance_at_1"] == pytest.approx(1 / 3)
            assert 0.0 <= section["matching"]["6s"]["accuracy"] <= 1.0 and section["matching"]["6s"]["chance"] == 0.5
            assert section["images"]["generated"] == 6
        assert report[family]["unseen_speech"]["classes"] == 3  # one clip of each of the 3 training speakers
    comparison = (repo / "reports/plots/families.csv").read_text().splitlines()
    assert comparison[0].startswith("family,") and len(comparison) == 1 + 5  # s2f feature + image, ridge, 2 GANs
    assert (repo / "data/features/identity_head.pt").is_file()
    assert (repo / "reports/face_grid.png").stat().st_size > 0
    assert (repo / "models/gan/wen2019.pt").is_file() and (repo / "models/gan/wav2pix.json").is_file()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"download@0", "collect", "preprocess@0", "features@0", "gather", "train_decoder",
                                   "train_encoder", "train_gan@wen2019", "train_gan@wav2pix", "evaluate", "register"}


def test_training_and_evaluation_are_in_the_mlflow_store(repo):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlruns.db'}")
    experiment = client.get_experiment_by_name("speech2face")
    runs = client.search_runs([experiment.experiment_id])
    by_stage = {r.data.tags["stage"]: r for r in runs}
    assert set(by_stage) == {"train_decoder", "train_encoder", "train_gan@wen2019", "train_gan@wav2pix", "evaluate",
                             "register"}
    assert len(client.get_metric_history(by_stage["train_encoder"].info.run_id, "loss_total")) == 2  # per epoch
    assert "speech2face.retrieval.6s.recall_at_1" in by_stage["evaluate"].data.metrics
    assert "wav2pix.images.detection_ratio" in by_stage["evaluate"].data.metrics
    for family in ("wen2019", "wav2pix"):  # every D and G term per epoch, and a sample grid per epoch
        gan_run = by_stage[f"train_gan@{family}"].info.run_id
        for term in ("loss_d_total", "loss_g_total", "loss_g_adversarial", "loss_d_fake"):
            assert len(client.get_metric_history(gan_run, term)) == 2, (family, term)
        samples = {f.path for f in client.list_artifacts(gan_run, "samples")}
        assert samples == {"samples/epoch_001.png", "samples/epoch_002.png"}
    for term in ("loss_decoder_l1", "loss_normalized_l2", "loss_distill", "loss_total"):
        assert len(client.get_metric_history(by_stage["train_encoder"].info.run_id, term)) == 2, term
    for term in ("loss_texture_l1", "loss_landmark_mse", "loss_identity", "proxy_loss_total"):
        assert client.get_metric_history(by_stage["train_decoder"].info.run_id, term), term
    encoder_files = {f.path for f in client.list_artifacts(by_stage["train_encoder"].info.run_id, "model")}
    assert encoder_files == {"model/voice_encoder.pt", "model/voice_encoder.json"}


def test_register_makes_tagged_challengers_of_every_model(repo):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlruns.db'}")
    commit = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    features_md5 = next(o["md5"] for o in lock["gather"]["outs"] if o["path"] == "data/features")
    report = json.loads((repo / "reports/metrics.json").read_text())
    recall = report["speech2face"]["retrieval"]["6s"]["recall_at_1"]
    written = json.loads((repo / "reports/registry_versions.json").read_text())["versions"]
    lineage = json.loads((repo / "reports/registry.json").read_text())  # the DVC output: content, no versions
    assert set(lineage) == {"model.sha256", "wen2019.model.sha256", "wav2pix.model.sha256", "dvc.data.features",
                            "dvc.data.preprocess", "dvc.data.download"}
    for name in ("speech2face", "s2f-voice-encoder", "s2f-face-decoder"):
        version = client.get_model_version_by_alias(name, "challenger")
        assert str(version.version) == written[name] == "1"
        assert version.tags["git_commit"] == commit
        assert version.tags["dvc.data.features"] == features_md5
        assert version.tags["model.sha256"] == lineage["model.sha256"]
        assert float(version.tags["metric.retrieval.6s.recall_at_1"]) == pytest.approx(recall)
    for family in ("wen2019", "wav2pix"):  # each GAN family beside speech2face, tagged with its own section
        version = client.get_model_version_by_alias(family, "challenger")
        assert str(version.version) == written[family] == "1" and version.tags["family"] == family
        assert version.tags["model.sha256"] == lineage[f"{family}.model.sha256"]
        assert float(version.tags["metric.retrieval.6s.recall_at_1"]) == pytest.approx(
            report[family]["retrieval"]["6s"]["recall_at_1"])
    composite = client.get_model_version("speech2face", "1")
    assert composite.tags["component.s2f-voice-encoder"] == "1" and composite.tags["component.s2f-face-decoder"] == "1"


def test_second_repro_runs_nothing(repo):
    out = run([sys.executable, "-m", "dvc", "repro"], repo).stdout
    assert "Running stage" not in out
    assert "up to date" in out


@pytest.mark.reliability
def test_forced_download_of_unchanged_media_reruns_nothing_downstream(repo):
    """The demo corpus and its manifest verdict are byte-identical when made again, so DVC sees no change."""
    out = run([sys.executable, "-m", "dvc", "repro", "-f", "download"], repo).stdout
    assert "Running stage 'download@0'" in out
    out = run([sys.executable, "-m", "dvc", "repro"], repo).stdout
    assert "Running stage" not in out, out


def test_params_change_reruns_only_downstream(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["evaluate"]["grid_speakers"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run([sys.executable, "-m", "dvc", "repro"], repo).stdout
    assert "Running stage 'evaluate'" in out
    assert "Running stage 'train_encoder'" not in out and "Running stage 'download@0'" not in out


@pytest.mark.reliability
@pytest.mark.parametrize("stage, key, value", [("train_encoder", "crop_seconds", 7.0),
                                               ("evaluate", "short_seconds", 100.0)])
def test_a_length_longer_than_the_clips_is_refused_naming_the_key(repo, tmp_path, stage, key, value):
    """The clip length is another stage's param, so the stage checks it against the shards before any work."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[stage][key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run([sys.executable, "-m", f"s2f.stages.{stage}", "--params", str(tmp_path / "params.yaml")],
                          cwd=repo, capture_output=True, text=True, timeout=300, env=tool_env())
    assert proc.returncode != 0
    assert f"{stage}.{key} = {value:g}" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.reliability
def test_a_garbage_model_file_ends_a_stage_run_by_dvc_with_one_line(repo, tmp_path):
    bad = tmp_path / "voice_encoder.pt"
    bad.write_bytes(b"\x80\x02not a checkpoint" * 4)
    (tmp_path / "voice_encoder.json").write_text((repo / "models/voice_encoder.json").read_text())  # config is fine
    proc = subprocess.run([sys.executable, "-m", "s2f.stages.evaluate", "--encoder", str(bad),
                           "--metrics", str(tmp_path / "m.json"), "--grid", str(tmp_path / "g.png")],
                          cwd=repo, capture_output=True, text=True, timeout=300, env=tool_env())
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert f"error: {bad}:" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
