"""A real `dvc repro` of every stage on a tiny demo configuration, in a fresh git repository."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from s2f.dataset import load_split
from tests.tiny_repo import make_tiny_repo, run, tool_env


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = make_tiny_repo(tmp_path_factory.mktemp("s2f-repo"))
    # system metrics sampled every second (MLflow's default is 10 s, longer than a tiny training stage)
    run([sys.executable, "-m", "dvc", "repro"], repo, env=tool_env() | {"MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1"})
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
    assert report["ridge"]["retrieval"]["6s"]["chance_at_1"] == pytest.approx(1 / 3, rel=2e-6)  # the ridge row
    s2f = report["speech2face"]
    for seconds in ("3s_repeated", "6s"):
        retrieval, features = s2f["retrieval"][seconds], s2f["features"][seconds]
        assert retrieval["gallery_size"] == 3  # 6 speakers, half held out: fewer than 100, so all of them
        assert retrieval["chance_at_1"] == pytest.approx(1 / 3, rel=2e-6)
        assert 0.0 <= retrieval["recall_at_1"] <= retrieval["recall_at_2"] <= 1.0
        assert set(features) == {"cosine_mean", "l1_mean", "l2_mean"}
    assert s2f["gender"]["labelled"] == 0  # the demo corpus has no labels
    assert s2f["craniofacial"]["samples"] == 6 and "nose_width" in s2f["craniofacial"]["voice_vs_face_decoded"]
    for family in ("wen2019", "wav2pix"):  # the GANs' faces measured as images, like Speech2Face's decoded ones
        for section in (report[family], s2f["decoded"]):
            assert section["retrieval"]["6s"]["chance_at_1"] == pytest.approx(1 / 3, rel=2e-6)
            assert 0.0 <= section["matching"]["6s"]["accuracy"] <= 1.0 and section["matching"]["6s"]["chance"] == 0.5
            assert section["images"]["generated"] == 6
        assert report[family]["unseen_speech"]["classes"] == 3  # one clip of each of the 3 training speakers
    comparison = (repo / "reports/plots/families.csv").read_text().splitlines()
    assert comparison[0].startswith("family,") and len(comparison) == 1 + 5  # s2f feature + image, ridge, 2 GANs
    headline = json.loads((repo / "reports/headline.json").read_text())
    assert set(headline) == {"speech2face", "speech2face_image", "ridge", "wen2019", "wav2pix", "chance"}
    assert headline["wav2pix"]["r1_6s"] == pytest.approx(report["wav2pix"]["retrieval"]["6s"]["recall_at_1"],
                                                          abs=1e-4)
    assert headline["chance"] == {"r1": pytest.approx(1 / 3, abs=1e-4)}  # galleries of 3: no R@10 to report
    assert (repo / "data/features/identity_head.pt").is_file()
    assert (repo / "reports/face_grid.png").stat().st_size > 0
    faces = np.load(repo / "data/evaluation/faces.npz")   # what the report was computed from, row for row
    test = load_split(repo / "data/preprocessed", repo / "data/features", "test", audio=False)
    assert list(faces["sample_id"]) == list(test.manifest["sample_id"])
    assert faces["speech2face_feature_6s"].shape == (6, 128)
    for name in ("speech2face_face", "wen2019_face", "wav2pix_face"):
        for seconds in ("6s", "3s_repeated"):
            assert faces[f"{name}_{seconds}"].shape[0] == 6 and faces[f"{name}_{seconds}"].dtype == np.uint8
    assert (repo / "models/gan/wen2019.pt").is_file() and (repo / "models/gan/wav2pix.json").is_file()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"download@0", "collect", "preprocess@0", "features@0", "gather", "train_decoder",
                                   "train_encoder", "train_gan@wen2019", "train_gan@wav2pix", "evaluate", "register"}


def test_dvc_lists_only_numbers_as_metrics_and_the_plots_as_images(repo):
    """`dvc metrics show` is a table a terminal can show: the headline file and the stages' small summaries, with
    no text values; every plot has a PNG that needs no network, for every family."""
    from PIL import Image

    shown = json.loads(run([sys.executable, "-m", "dvc", "metrics", "show", "--json"], repo).stdout)
    files = shown[""]["data"] if "" in shown else next(iter(shown.values()))["data"]
    assert "reports/headline.json" in files and "reports/metrics.json" in files  # headline, and every number

    def leaves(tree):
        for value in tree.values():
            yield from leaves(value) if isinstance(value, dict) else [value]
    values = [v for entry in files.values() for v in leaves(entry.get("data", {}))]
    assert values and not [v for v in values if isinstance(v, str)]
    images = json.loads(run([sys.executable, "-m", "dvc", "plots", "show", "--json"], repo).stdout)["data"]
    for name in ("retrieval", "families", "train_decoder", "train_encoder", "train_gan_wen2019", "train_gan_wav2pix"):
        path = f"reports/plots/{name}.png"
        assert path in images, f"{path} is not a DVC plot"
        with Image.open(repo / path) as image:
            assert image.format == "PNG" and image.width >= 400


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
    # each trained model is a LoggedModel of its training run, its last epoch's scores linked to it
    logged = {m.source_run_id: m for m in client.search_logged_models([experiment.experiment_id])}
    for stage, name, score in (("train_encoder", "voice_encoder", "kept_val_recall_at_1"),
                               ("train_decoder", "face_decoder", "loss_texture_l1"),
                               ("train_gan@wen2019", "wen2019", "loss_g_total"),
                               ("train_gan@wav2pix", "wav2pix", "loss_d_total")):
        model = logged[by_stage[stage].info.run_id]
        assert model.name == name and str(model.status) == "READY", (stage, model)
        assert score in {m.key for m in model.metrics}, (stage, model.metrics)
        assert {f.path for f in client.list_logged_model_artifacts(model.model_id)} == {f"{name}.pt", f"{name}.json"}
    for stage, png in (("train_encoder", "train_encoder"), ("train_decoder", "train_decoder"),
                       ("train_gan@wen2019", "train_gan_wen2019")):
        assert f"plots/{png}.png" in {f.path for f in client.list_artifacts(by_stage[stage].info.run_id, "plots")}
    evaluated = {f.path for f in client.list_artifacts(by_stage["evaluate"].info.run_id)}
    assert {"retrieval.png", "families.png", "headline.json"} <= evaluated


def test_the_runs_of_one_pass_are_grouped_and_say_what_they_ran_on(repo):
    """One tag and one name suffix for every stage run of a `dvc repro`; the commit, whether it was dirty, the data
    as MLflow datasets digested by DVC's hash, and system metrics sampled while training."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlruns.db'}")
    runs = client.search_runs([client.get_experiment_by_name("speech2face").experiment_id])
    passes = {r.data.tags["pipeline_pass"] for r in runs}
    assert len(passes) == 1
    group = passes.pop()
    assert {r.info.run_name for r in runs} == {f"{r.data.tags['stage']} {group}" for r in runs}
    assert all(r.data.tags["git_dirty"] == "false" for r in runs)  # the tiny repo is a clean commit
    lock = yaml.safe_load((repo.parent / "first-dvc.lock").read_text())["stages"]
    features = next(o["md5"] for o in lock["gather"]["outs"] if o["path"] == "data/features").removesuffix(".dir")
    by_stage = {r.data.tags["stage"]: r for r in runs}
    for stage, name in (("train_encoder", "train"), ("train_gan@wav2pix", "train"), ("evaluate", "test")):
        inputs = client.get_run(by_stage[stage].info.run_id).inputs.dataset_inputs
        assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [(name, features)], stage
    history = client.get_metric_history(by_stage["train_encoder"].info.run_id, "system/cpu_utilization_percentage")
    assert history, "no system metrics in the training run"


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
        # the headline numbers only (R@10 needs a gallery of 10: the tiny corpus's has 3), not ~100 metrics
        assert {k for k in version.tags if k.startswith("metric.")} == {
            "metric.retrieval.6s.recall_at_1", "metric.decoded.retrieval.6s.recall_at_1",
            "metric.decoded.matching.6s.accuracy", "metric.decoded.images.detection_ratio"}
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


def test_the_committed_dvc_lock_records_only_stages_dvc_yaml_defines():
    """DVC keeps a stage's lock entry after the stage is renamed or turned into a `foreach` (`preprocess` became
    `preprocess@0`): a stale entry then shows a newcomer a command and data hashes no `dvc repro` makes."""
    from dvc.repo import Repo

    root = Path(__file__).resolve().parents[2]
    with Repo(str(root)) as dvc_repo:
        defined = {stage.name for stage in dvc_repo.index.stages}
    recorded = set(yaml.safe_load((root / "dvc.lock").read_text())["stages"])
    stale, missing = sorted(recorded - defined), sorted(defined - recorded)
    assert not stale and not missing, f"dvc.lock entries of no stage: {stale}; stages with no entry: {missing}"
