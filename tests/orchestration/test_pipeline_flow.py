"""The pipeline through a real Prefect server, real process workers on the `cpu` and `gpu` pools, a DVC remote and
MLflow artifacts on a real S3-protocol server (moto on 127.0.0.1): what `make orchestrate` does, on the tiny demo
split into two partitions that fan out over the `cpu` workers, each with its own checkouts and DVC cache."""

from __future__ import annotations

import json
import sys
import urllib.request
from datetime import datetime
from pathlib import Path

import boto3
import pytest

from s2f.orchestration.local import ControlPlane, defaults, stage_progress, watch
from tests.s3_server import TEST_CREDENTIALS, free_port
from tests.tiny_repo import make_tiny_repo, run, tool_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3(s3_server: str, tmp_path_factory) -> dict[str, str]:
    """The S3 half of infra/s2f.env, pointed at moto: DVC remote, MLflow artifacts (direct), boto3."""
    bucket = "s2f-orchestration"
    boto3.session.Session(**{"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}).client(
        "s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    empty = tmp_path_factory.mktemp("aws")
    return {**TEST_CREDENTIALS, "AWS_ENDPOINT_URL": s3_server, "MLFLOW_S3_ENDPOINT_URL": s3_server,
            "AWS_CONFIG_FILE": str(empty / "config"), "AWS_SHARED_CREDENTIALS_FILE": str(empty / "credentials"),
            "S2F_DVC_REMOTE": f"s3://{bucket}/dvc", "S2F_ARTIFACT_URI": f"s3://{bucket}/mlflow", "BUCKET": bucket}


@pytest.fixture(scope="module")
def plane(tmp_path_factory, s3) -> ControlPlane:
    repo = make_tiny_repo(tmp_path_factory.mktemp("project"), {"data": {"partitions": [0, 1]},
                                                                     "preprocess": {"shard_size": 4, "partitions": [0, 1]}})
    state = tmp_path_factory.mktemp("state")
    settings = defaults(repo, state, free_port()) | {k: v for k, v in s3.items() if k != "BUCKET"} | {
        "PREFECT_HOME": str(state / "prefect"), "S2F_CODE_DIR": str(repo), "S2F_GIT_URL": str(repo),
        "S2F_WORKER_HOME": str(state / "workers"), "MLFLOW_TRACKING_URI": f"sqlite:///{state / 'mlflow.db'}"}
    # one cpu worker runs the pipeline flow (a run at a time each), so the two partitions go to the other two
    plane = ControlPlane(repo, state, settings, cpu_workers=3, cpu_limit=1)
    try:
        plane.up(gpus=1)
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="module")
def pipeline_run(plane: ControlPlane):
    return plane.run("pipeline/demo", timeout=1500)


def _api(plane: ControlPlane, path: str, body: dict) -> list[dict]:
    request = urllib.request.Request(f"{plane.api_url}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _stage_runs(plane: ControlPlane) -> dict[str, dict]:
    runs = _api(plane, "/flow_runs/filter", {"flow_runs": {"name": {"like_": " on "}}})
    return {r["parameters"]["stage"]: r for r in runs if "stage" in r["parameters"]}


def _worker_of(plane: ControlPlane, flow_run: dict) -> str:
    """The worker whose checkout ran the flow run (its log line `checkout WORKER_HOME/checkout-N at …`)."""
    logs = _api(plane, "/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run["id"]]}}, "limit": 200})
    line = next(log["message"] for log in logs if log["message"].startswith("checkout "))
    return Path(line.split()[1]).parent.name


def _log(plane: ControlPlane) -> str:
    return "\n".join(p.read_text()[-3000:] for p in sorted((plane.state / "logs").glob("worker-*.log")))


def test_pipeline_deployment_completes_through_both_pools(plane, pipeline_run):
    assert pipeline_run.returncode == 0, f"{pipeline_run.stdout[-3000:]}\n{_log(plane)}"
    stages = _stage_runs(plane)
    assert set(stages) == {"download@0", "download@1", "collect", "preprocess@0", "preprocess@1", "features@0", "features@1", "gather",
                           "train_decoder", "train_encoder", "train_gan@wen2019", "train_gan@wav2pix", "evaluate",
                           "register"}
    for name, flow_run in stages.items():
        assert flow_run["state_type"] == "COMPLETED", name
        assert flow_run["work_pool_name"] == ("gpu" if name.startswith("train_") else "cpu"), name
    limits = _api(plane, "/v2/concurrency_limits/filter", {})
    assert [(lim["name"], lim["limit"]) for lim in limits] == [("gpu", 1)]


def test_a_stage_logs_its_lines_as_they_come_and_progress_counts_the_stages(plane, pipeline_run):
    """What a person watching the flow run sees: the stage's own lines, each a log record of its own, written
    before the stage's publishing step (not one block after it); and `make orchestrate`'s progress line."""
    assert pipeline_run.returncode == 0
    run = _stage_runs(plane)["train_encoder"]
    logs = _api(plane, "/logs/filter", {"logs": {"flow_run_id": {"any_": [run["id"]]}}, "limit": 200,
                                        "sort": "TIMESTAMP_ASC"})   # 200: the API's largest page
    messages = [log["message"] for log in logs]
    final = next(i for i, m in enumerate(messages) if m.startswith("train_encoder: final loss"))
    ran = next(i for i, m in enumerate(messages) if m.startswith("Running stage 'train_encoder'"))
    published = next(i for i, m in enumerate(messages) if "dvc push" in m or "pushed" in m.lower())
    assert ran < final < published
    assert stage_progress(plane.api_url, 0).startswith("14 stages done")


def test_partitions_ran_side_by_side_on_two_workers_then_were_merged(plane, pipeline_run):
    assert pipeline_run.returncode == 0
    stages = _stage_runs(plane)
    for fanned, merge in (("download", "collect"), ("preprocess", "gather")):
        pair = (f"{fanned}@0", f"{fanned}@1")
        workers = {stage: _worker_of(plane, stages[stage]) for stage in pair}
        assert workers[pair[0]] != workers[pair[1]], workers
        assert all(w.startswith("cpu-") for w in workers.values()), workers
        start, end = ({s: datetime.fromisoformat(stages[s][key]) for s in pair} for key in ("start_time", "end_time"))
        assert max(start.values()) < min(end.values()), (start, end)  # concurrent, not one after the other
        merge_start = datetime.fromisoformat(stages[merge]["start_time"])
        assert all(end[s] <= merge_start for s in pair), merge


def test_each_stage_ran_once_and_another_checkout_restores_without_recomputing(plane, pipeline_run, s3,
                                                                               tmp_path):
    assert pipeline_run.returncode == 0
    clone = tmp_path / "elsewhere"
    env = tool_env(**{k: v for k, v in s3.items() if k.startswith("AWS_")})
    run(["git", "clone", "-q", str(plane.root), str(clone)], tmp_path, env)
    run(["dvc", "remote", "add", "--local", "-f", "-d", "s3", s3["S2F_DVC_REMOTE"]], clone, env)
    run(["dvc", "remote", "modify", "--local", "s3", "endpointurl", s3["AWS_ENDPOINT_URL"]], clone, env)
    out = run([sys.executable, "-m", "dvc", "repro", "--pull"], clone, env).stdout
    assert "Running stage" not in out, out
    assert out.count("is cached - skipping run") == 14, out  # 2 partitions × 3 stages, train_gan's 2 families
    report = json.loads((clone / "reports/metrics.json").read_text())
    assert report["speech2face"]["retrieval"]["6s"]["gallery_size"] == 3
    assert (clone / "models/voice_encoder.pt").is_file()


def test_models_are_registered_with_artifacts_on_s3(plane, pipeline_run, s3):
    import mlflow

    assert pipeline_run.returncode == 0
    client = mlflow.MlflowClient(plane.settings["MLFLOW_TRACKING_URI"])
    commit = run(["git", "rev-parse", "HEAD"], plane.root).stdout.strip()
    for name in ("speech2face", "s2f-voice-encoder", "s2f-face-decoder"):
        version = client.get_model_version_by_alias(name, "challenger")
        assert version.tags["git_commit"] == commit
        assert "metric.retrieval.6s.recall_at_1" in version.tags
        assert version.source.startswith("s3://") or "s3://" in client.get_model_version_download_uri(
            name, version.version)
    s3_client = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing").client(
        "s3", endpoint_url=s3["AWS_ENDPOINT_URL"], region_name="us-east-1")
    keys = [o["Key"] for page in s3_client.get_paginator("list_objects_v2").paginate(
        Bucket=s3["BUCKET"], Prefix="mlflow/") for o in page.get("Contents", [])]
    assert any(k.endswith("voice_encoder.pt") for k in keys), keys[:20]


def test_the_pipeline_promotes_its_challenger_and_promote_then_refuses_with_the_reason(plane, pipeline_run,
                                                                                         capsys):
    import mlflow

    assert pipeline_run.returncode == 0
    client = mlflow.MlflowClient(plane.settings["MLFLOW_TRACKING_URI"])
    champion = client.get_model_version_by_alias("speech2face", "champion")  # set by the pipeline's last step
    assert champion.tags["promotion.decision"] == "promoted"
    assert str(client.get_model_version_by_alias("s2f-voice-encoder", "champion").version) == \
        champion.tags["component.s2f-voice-encoder"]
    promotions = _api(plane, "/flow_runs/filter", {"flows": {"name": {"any_": ["promote"]}}})
    assert [r["state_type"] for r in promotions] == ["COMPLETED"]
    capsys.readouterr()
    status = watch(plane, "promote/default", wait=300, every=1)  # as `make orchestrate` waits: progress as it goes
    shown = capsys.readouterr().out
    assert status not in (0, None), shown
    assert "already the champion" in _log(plane)
    assert "orchestrate: 0 min in; 0 stages done" in shown, shown  # no stage flow runs in a promote run


def test_the_nightly_schedule_is_deployed_paused(plane):
    deployment = json.loads(urllib.request.urlopen(f"{plane.api_url}/deployments/name/pipeline/nightly",
                                                   timeout=30).read())
    assert [(s["schedule"]["cron"], s["active"]) for s in deployment["schedules"]] == [("0 2 * * *", False)]


def test_orchestrate_stops_watching_a_run_longer_than_its_wait_and_the_run_goes_on(plane, pipeline_run, capsys):
    """`make orchestrate --wait` shorter than the run: the watching ends (main() then says how to pick the run up),
    the run does not. A second pipeline pass takes minutes of flow runs (a checkout and a restore per stage); the
    last test of the module, so nothing after it shares the workers with that pass."""
    assert pipeline_run.returncode == 0
    before = {r["id"] for r in _api(plane, "/flow_runs/filter", {"flows": {"name": {"any_": ["pipeline"]}}})}
    assert watch(plane, "pipeline/demo", wait=20, every=10) is None
    assert "orchestrate: 0 min in; " in capsys.readouterr().out   # progress while it waited
    [second] = [r for r in _api(plane, "/flow_runs/filter", {"flows": {"name": {"any_": ["pipeline"]}}})
                if r["id"] not in before]
    assert second["state_type"] in ("SCHEDULED", "PENDING", "RUNNING"), second["state_type"]
