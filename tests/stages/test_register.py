"""The register stage on its own (no `dvc repro`): a family-keyed reports/metrics.json, tiny Speech2Face and GAN
models, a fresh SQLite registry. Every model family is registered, tagged from its own report section, aliased
`challenger`; the DVC output holds content hashes only."""

from __future__ import annotations

import json

import pytest

from s2f.stages import register as register_stage
from tests.serving import tiny_gan, tiny_models

REPORT = {"speech2face": {"retrieval": {"6s": {"recall_at_1": 0.5}}, "decoded": {"retrieval": {"6s": {"x": 1.0}}}},
          "wav2pix": {"retrieval": {"6s": {"recall_at_1": 0.25}, "3s_repeated": {"recall_at_1": 0.125}},
                      "images": {"detection_ratio": 0.75, "reason": "a string is left out"}},
          "wen2019": {"retrieval": {"6s": {"recall_at_1": 0.0625}}}}   # trained, but not in train_gan.families


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(register_stage, "git_commit", lambda: "c0ffee")   # no git here
    tiny_models(tmp_path / "models")
    tiny_gan(tmp_path / "models" / "gan", "wav2pix")
    (tmp_path / "params.yaml").write_text("data:\n  source: local\ntrain_gan:\n  families: [wav2pix]\n"
                                        "promote:\n  metric: retrieval.6s.recall_at_1\n")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "metrics.json").write_text(json.dumps(REPORT))
    yield tmp_path
    import mlflow

    mlflow.set_tracking_uri(None)


def _register(root) -> None:
    register_stage.main(["--params", "params.yaml", "--encoder", "models/voice_encoder.pt",
                         "--decoder", "models/face_decoder.pt", "--gan-models", "models/gan",
                         "--lock", "missing.lock"])


def test_every_family_is_registered_with_its_own_sections_metrics(workspace, capsys):
    import mlflow

    from s2f.registry import models_sha256

    _register(workspace)
    shown = capsys.readouterr().out
    assert "register: aliased challenger: " in shown and "wav2pix v1" in shown
    assert max(len(line) for line in shown.splitlines()) <= 100  # a terminal's width
    client = mlflow.MlflowClient()
    lineage = json.loads((workspace / "reports/registry.json").read_text())
    assert set(lineage) == {"model.sha256", "wav2pix.model.sha256", "dvc.data.features", "dvc.data.preprocess",
                            "dvc.data.download"}
    assert lineage["wav2pix.model.sha256"] == models_sha256(workspace / "models/gan/wav2pix.pt")
    written = json.loads((workspace / "reports/registry_versions.json").read_text())
    assert written["versions"] == {"s2f-voice-encoder": "1", "s2f-face-decoder": "1", "speech2face": "1",
                                   "wav2pix": "1"}
    assert "wen2019" not in {m.name for m in client.search_registered_models()}

    gan = client.get_model_version_by_alias("wav2pix", "challenger")
    assert gan.tags["family"] == "wav2pix" and gan.tags["git_commit"] == "c0ffee"
    assert gan.tags["data.source"] == "local"  # what it learned from: infer and the page warn only for `demo`
    assert gan.tags["model.sha256"] == lineage["wav2pix.model.sha256"] and gan.tags["dvc.data.features"] == "unknown"
    # tagged: the headline numbers and the gate's metric (params' default, retrieval.6s.recall_at_1); the rest of the
    # section is linked to the version's LoggedModel under the evaluate run's names
    assert {k: float(v) for k, v in gan.tags.items() if k.startswith("metric.")} == {
        "metric.retrieval.6s.recall_at_1": 0.25, "metric.images.detection_ratio": 0.75}
    assert _linked(client, gan) == {"wav2pix.retrieval.6s.recall_at_1": 0.25, "wav2pix.images.detection_ratio": 0.75,
                                    "wav2pix.retrieval.3s_repeated.recall_at_1": 0.125}
    assert gan.tags["run_id"] == written["run_id"]

    for name in ("speech2face", "s2f-voice-encoder", "s2f-face-decoder"):
        version = client.get_model_version_by_alias(name, "challenger")
        assert version.tags["family"] == "speech2face" and version.tags["model.sha256"] == lineage["model.sha256"]
        assert {k for k in version.tags if k.startswith("metric.")} == {"metric.retrieval.6s.recall_at_1"}
        assert float(version.tags["metric.retrieval.6s.recall_at_1"]) == 0.5           # report["speech2face"]
        assert _linked(client, version) == {"speech2face.retrieval.6s.recall_at_1": 0.5,
                                            "speech2face.decoded.retrieval.6s.x": 1.0}


def _linked(client, version) -> dict[str, float]:
    """The metrics linked to a registry version's LoggedModel (what the MLflow UI shows on the model's page)."""
    model = client.get_logged_model(version.source.removeprefix("models:/"))  # the version of a LoggedModel
    assert model.source_run_id == version.tags["run_id"]
    assert (model.name, model.model_type) == (version.name, "pyfunc")  # told apart from the training runs' weights
    return {metric.key: metric.value for metric in model.metrics}


def test_the_gate_metric_is_tagged_whatever_it_is(workspace):
    import mlflow

    params = workspace / "params.yaml"
    params.write_text(params.read_text().replace("retrieval.6s.recall_at_1", "retrieval.3s_repeated.recall_at_1"))
    _register(workspace)
    gan = mlflow.MlflowClient().get_model_version_by_alias("wav2pix", "challenger")
    assert float(gan.tags["metric.retrieval.3s_repeated.recall_at_1"]) == 0.125


def test_a_family_without_its_report_section_or_its_model_fails_before_registering(workspace, capsys):
    import mlflow

    (workspace / "reports/metrics.json").write_text(json.dumps({"speech2face": REPORT["speech2face"]}))
    with pytest.raises(SystemExit, match="metrics.json has no section 'wav2pix'"):
        _register(workspace)
    (workspace / "models/gan/wav2pix.pt").unlink()
    with pytest.raises(SystemExit):
        _register(workspace)
    assert "no model at models/gan/wav2pix.pt" in capsys.readouterr().err
    assert not mlflow.MlflowClient().search_registered_models()
