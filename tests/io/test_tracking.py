"""Where MLflow puts artifacts (beside a SQLite store, directly on S3, or on S3 through a tracking server's proxy),
how a stage run ends, and how a dead tracker is told apart (the outage itself: tests/reliability)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pandas as pd
import pytest

from s2f.io.http import wait_until_answers
from s2f.io.tracking import HTTP_CLIENT_DEFAULTS, artifact_location, bounded_http_client, stage_run, unreachable
from tests.s3_server import free_port


@pytest.fixture(autouse=True)
def _forget_the_store():
    """Each test points MLflow (a process-wide setting) at its own store: point it back afterwards."""
    yield
    import mlflow

    mlflow.set_tracking_uri(None)


def _keys(endpoint: str, bucket: str, prefix: str) -> list[str]:
    client = boto3.session.Session().client("s3", endpoint_url=endpoint)
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def _log_one_artifact(tmp_path: Path) -> None:
    import mlflow

    note = tmp_path / "note.txt"
    note.write_text("hello")
    with stage_run("unit", {"a": 1}):
        mlflow.log_artifact(str(note))


def test_sqlite_store_keeps_artifacts_beside_the_database(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store' / 'mlruns.db'}")
    monkeypatch.delenv("S2F_ARTIFACT_URI", raising=False)
    (tmp_path / "store").mkdir()
    assert artifact_location() == (tmp_path / "store" / "mlartifacts").as_uri()
    monkeypatch.chdir(tmp_path)
    _log_one_artifact(tmp_path)
    assert list((tmp_path / "store" / "mlartifacts").rglob("note.txt"))


def test_artifacts_go_directly_to_s3(s3_env, monkeypatch, tmp_path):
    endpoint, bucket = s3_env
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    monkeypatch.setenv("S2F_ARTIFACT_URI", f"s3://{bucket}/direct")
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("S2F_EXPERIMENT", "direct-s3")
    _log_one_artifact(tmp_path)
    assert any(k.startswith("direct/") and k.endswith("note.txt") for k in _keys(endpoint, bucket, "direct/"))


@pytest.fixture
def proxy_server(s3_env, tmp_path):
    """`mlflow server` on 127.0.0.1 proxying artifacts to S3 (it alone holds the S3 endpoint and credentials)."""
    endpoint, bucket = s3_env
    port = free_port()
    env = {**os.environ, "MLFLOW_S3_ENDPOINT_URL": endpoint,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                             f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination", f"s3://{bucket}/proxied",
                             "--serve-artifacts", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_answers(f"{url}/health", 60, gave_up=lambda: proc.poll() is not None):
            pytest.fail("mlflow server did not start in 60 s")
        yield url, endpoint, bucket
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def test_artifacts_reach_s3_through_the_tracking_server_proxy(proxy_server, tmp_path):
    url, endpoint, bucket = proxy_server
    client_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_S3"))}
    client_env |= {"MLFLOW_TRACKING_URI": url, "S2F_EXPERIMENT": "proxied", "AWS_CONFIG_FILE": "/nonexistent",
                   "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    code = ("import mlflow, pathlib; from s2f.io.tracking import stage_run; p = pathlib.Path('note.txt'); "
            "p.write_text('hi');\nwith stage_run('unit', {}):\n    mlflow.log_artifact(str(p))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=client_env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert any(k.endswith("note.txt") for k in _keys(endpoint, bucket, "proxied/"))


def _status_after(tmp_path: Path, monkeypatch, error: BaseException) -> str:
    """The status a stage run ends with when `error` is raised inside it (on a fresh SQLite store)."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(type(error)):
        with stage_run("unit", {"a": 1}) as run:
            raise error
    assert mlflow.active_run() is None  # the process is left without a dangling active run
    return mlflow.MlflowClient().get_run(run.info.run_id).info.status


def test_run_ends_failed_when_the_stage_raises(tmp_path, monkeypatch):
    assert _status_after(tmp_path, monkeypatch, ValueError("bad input")) == "FAILED"


def test_run_ends_killed_on_ctrl_c(tmp_path, monkeypatch):
    assert _status_after(tmp_path, monkeypatch, KeyboardInterrupt()) == "KILLED"


def test_a_stage_that_exits_cleanly_ends_finished(tmp_path, monkeypatch):
    assert _status_after(tmp_path, monkeypatch, SystemExit(0)) == "FINISHED"


def test_dead_tracker_is_named_with_its_reason_within_seconds():
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    reason = unreachable(url, timeout=2.0)
    assert reason is not None and "refused" in reason.lower() and time.monotonic() - started < 3
    assert unreachable("sqlite:///x.db", timeout=2.0) is None  # not a server: nothing to probe


def test_client_retries_are_bounded_only_where_the_user_set_none(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    with bounded_http_client():
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5"
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == HTTP_CLIENT_DEFAULTS["MLFLOW_HTTP_REQUEST_TIMEOUT"]
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ  # the process environment is left as it was


def test_a_call_the_tracker_refuses_is_dropped_without_holding_up_the_rest(tmp_path, monkeypatch, capsys):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    monkeypatch.chdir(tmp_path)
    with stage_run("unit", {"lr": 1}) as run:
        for epoch in range(3):
            run.log_params({"lr": 2 + epoch})  # MLflow refuses to change a logged param
            run.log_metrics({"loss": 1.0 / (epoch + 1)}, step=epoch)
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2]
    assert mlflow.MlflowClient().get_run(run.info.run_id).info.status == "FINISHED"
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and "refused" in warnings[0] and "3 params" in warnings[1], warnings



def _saved_model(tmp_path: Path, monkeypatch, name: str) -> Path:
    """A fresh SQLite store as the tracker, and a saved model NAME.pt beside NAME.json to log."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    monkeypatch.chdir(tmp_path)
    weights = tmp_path / f"{name}.pt"
    weights.write_bytes(b"weights")
    weights.with_suffix(".json").write_text("{}")
    return weights


def test_a_trained_model_is_a_logged_model_of_its_run_with_its_scores_linked(tmp_path, monkeypatch):
    """What the MLflow UI's model page shows for a training run: the model's files, the scores of its last epoch and
    its summary, and its params; the run's per-epoch history keeps one point per epoch all the same."""
    import mlflow

    from s2f.io.tracking import EpochCurve

    weights = _saved_model(tmp_path, monkeypatch, "voice_encoder")
    with stage_run("train_encoder", {}) as run:
        run.log_dataset(pd.DataFrame({"speaker": ["a", "b"]}), "train", "data/features")
        curve = EpochCurve(run)
        for epoch, loss in enumerate((2.0, 1.5)):
            curve(epoch, {"loss_total": loss})
        scores, step, stamp = curve.scores()
        run.log_model(weights, "voice_encoder", scores | {"kept_epoch": 1.0}, step=step, stamp=stamp,
                      params={"preset": "demo"})
    client = mlflow.MlflowClient()
    [model] = client.search_logged_models([run.info.experiment_id])
    assert (model.name, model.model_type, model.source_run_id) == ("voice_encoder", "weights", run.run_id)
    assert str(model.status) == "READY" and model.params == {"preset": "demo"}
    # the UI opens the experiment as model training (runs, models, metrics), not on its GenAI views
    assert client.get_experiment(run.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    assert {(m.key, m.value, m.step) for m in model.metrics} == {("loss_total", 1.5, 1), ("kept_epoch", 1.0, 1)}
    assert {m.dataset_name for m in model.metrics} == {"train"}  # the page lists the data it was trained on
    assert [m.value for m in client.get_metric_history(run.run_id, "loss_total")] == [2.0, 1.5]
    assert {f.path for f in client.list_logged_model_artifacts(model.model_id)} == {"voice_encoder.pt",
                                                                                    "voice_encoder.json"}


class _GoesAwayOnce:
    """The real client, but the tracker goes away once during `fails` (before it acts, or after: the answer lost)."""

    def __init__(self, client, fails: str, after: bool = False):
        self.client, self.fails, self.after, self.failed = client, fails, after, False

    def __getattr__(self, name):
        call = getattr(self.client, name)
        if name != self.fails or self.failed:
            return call

        def once(*args, **kwargs):
            self.failed = True
            if self.after:
                call(*args, **kwargs)
            raise ConnectionError("the tracker went away")
        return once


@pytest.mark.parametrize("fails, after", [("create_logged_model", True), ("log_model_artifacts", False),
                                          ("log_batch", False), ("finalize_logged_model", False)])
def test_a_model_sent_again_after_an_outage_is_made_and_linked_once(tmp_path, monkeypatch, fails, after):
    """However far a model's logging got when the tracker went away (its creation answered or not), sending the kept
    call again finishes it: one READY model, its files, its scores linked once."""
    import mlflow
    from mlflow.entities import Metric

    from s2f.io.tracking import _LoggedModel

    weights = _saved_model(tmp_path, monkeypatch, "wen2019")
    with stage_run("train_gan@wen2019", {}) as run:
        client = mlflow.MlflowClient()
        call = _LoggedModel(weights, "wen2019", run.info.experiment_id, [Metric("loss_g_total", 0.5, 1000, 3)], {})
        with pytest.raises(ConnectionError):
            call.send(_GoesAwayOnce(client, fails, after), run.run_id)
        call.send(client, run.run_id)
    [model] = client.search_logged_models([run.info.experiment_id])
    assert str(model.status) == "READY" and [(m.key, m.value) for m in model.metrics] == [("loss_g_total", 0.5)]
    assert {f.path for f in client.list_logged_model_artifacts(model.model_id)} == {"wen2019.pt", "wen2019.json"}
    assert len(client.get_metric_history(run.run_id, "loss_g_total")) == 1
