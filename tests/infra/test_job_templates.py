"""The Kubernetes GPU work pool's base job template, checked and rendered with Prefect's own templating and validation
(the code the server runs on `work-pool create` and the worker runs per flow run), and its ConfigMap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.server.schemas.actions import validate_base_job_template
from prefect.utilities.annotations import NotSet
from prefect.utilities.schema_tools.validation import ValidationError, validate
from prefect.utilities.templating import apply_values, find_placeholders
from prefect.workers.base import BaseJobConfiguration

from tests.infra.test_compose import read_env_file

INFRA = Path(__file__).resolve().parents[2] / "infra"
TEMPLATE = INFRA / "k8s" / "gpu-base-job-template.json"
CONFIGMAP = INFRA / "k8s" / "s2f-env.configmap.yaml"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return json.loads(TEMPLATE.read_text())


def render(template: dict[str, Any], values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The job configuration as `BaseJobConfiguration.from_template_and_values` builds it: the variables' defaults,
    overridden by the deployment's job variables (validated as the server validates them), applied to the template."""
    variables = BaseJobConfiguration._get_base_config_defaults(template["variables"]["properties"])
    variables.update(values or {})
    validate(variables, template["variables"], raise_on_error=True, allow_none_with_default=True)
    return apply_values(template["job_configuration"], variables)


def container(config: dict[str, Any]) -> dict[str, Any]:
    return config["job_manifest"]["spec"]["template"]["spec"]["containers"][0]


def test_the_server_accepts_the_template(template: dict[str, Any]) -> None:
    assert validate_base_job_template(template) is template


def test_every_placeholder_is_a_declared_variable_and_every_variable_is_used(template: dict[str, Any]) -> None:
    used = {p.name for p in find_placeholders(template["job_configuration"])}
    declared = set(template["variables"]["properties"])
    assert used <= declared, f"undeclared: {used - declared}"
    assert declared <= used, f"declared but never used: {declared - used}"
    assert "gpu_count" in used


def test_a_missing_variable_is_refused_by_the_server(template: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(template))
    del broken["variables"]["properties"]["gpu_count"]
    with pytest.raises(ValueError, match="gpu_count"):
        validate_base_job_template(broken)


def test_rendered_with_defaults_it_is_a_one_gpu_job(template: dict[str, Any]) -> None:
    config = render(template)
    assert not find_placeholders(config), "a placeholder was left unrendered"
    job = config["job_manifest"]
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert job["spec"]["backoffLimit"] == 0, "a failed flow run is retried by Prefect, not by Kubernetes"
    assert isinstance(job["spec"]["ttlSecondsAfterFinished"], int) and job["spec"]["ttlSecondsAfterFinished"] > 0
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    main = container(config)
    assert main["name"] == "prefect-job"  # what prefect-kubernetes validates and patches
    assert main["image"] == template["variables"]["properties"]["image"]["default"]
    assert main["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    # no command or env given: the keys drop out, and the worker fills in `prefect flow-run execute` and its env
    assert "args" not in main and "env" not in main and "command" not in config
    mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    assert mounts["dshm"] == "/dev/shm" and {v["name"] for v in pod["volumes"]} == set(mounts)


def test_deployment_job_variables_override_the_defaults(template: dict[str, Any]) -> None:
    config = render(template, {"gpu_count": 4, "image": "registry.example.org/s2f:0.1.0-cuda",
                               "command": "prefect flow-run execute", "env": {"S2F_EXTRA": "1"}, "name": "train"})
    main = container(config)
    assert main["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert main["image"] == "registry.example.org/s2f:0.1.0-cuda"
    assert main["args"] == "prefect flow-run execute" and main["env"] == {"S2F_EXTRA": "1"}
    assert config["job_manifest"]["metadata"]["generateName"] == "train-"


@pytest.mark.parametrize("bad", [{"gpu_count": 0}, {"gpu_count": "two"}, {"image_pull_policy": "Sometimes"}])
def test_invalid_job_variables_are_refused(template: dict[str, Any], bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        render(template, bad)


def test_the_pod_reads_the_configmap_and_secret_of_the_env_files(template: dict[str, Any]) -> None:
    configmap = yaml.safe_load(CONFIGMAP.read_text())
    assert (configmap["apiVersion"], configmap["kind"]) == ("v1", "ConfigMap")
    config = render(template)
    refs = container(config)["envFrom"]
    assert {"configMapRef": {"name": configmap["metadata"]["name"]}} in refs
    assert {"secretRef": {"name": "s2f-secrets"}} in refs
    assert config["namespace"] == configmap["metadata"]["namespace"] == config["job_manifest"]["metadata"]["namespace"]
    # the same keys as the compose env file, every value a string (Kubernetes refuses numbers and booleans)
    env = read_env_file(INFRA / "s2f.env")
    assert set(configmap["data"]) == set(env)
    assert all(isinstance(v, str) and v for v in configmap["data"].values())
    for key in ("S2F_DVC_REMOTE", "S2F_WORKER_HOME", "AWS_DEFAULT_REGION", "MLFLOW_DISABLE_TELEMETRY"):
        assert configmap["data"][key] == env[key], key
    mounts = {m["mountPath"] for m in container(config)["volumeMounts"]}
    assert configmap["data"]["S2F_WORKER_HOME"] in mounts


def test_apply_values_drops_unset_keys() -> None:
    """The template relies on this: optional variables (service account, command, env) vanish when unset."""
    assert apply_values({"a": "{{ x }}", "b": 1}, {}) == {"b": 1}
    assert apply_values("{{ x }}", {}, remove_notset=False) is NotSet
