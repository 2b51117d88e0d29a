"""The control plane's compose file, image and env files: `docker compose config` where the compose plugin exists,
and everywhere a structural check of what compose would only find out at `up` time (or never)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
COMPOSE_FILE = INFRA / "docker-compose.yml"
DOCKERFILE = INFRA / "Dockerfile"

SERVICES = {"postgres", "minio", "minio-init", "mlflow", "prefect-server", "setup", "worker-cpu", "worker-gpu"}
ONE_SHOT = {"minio-init", "setup"}
CONTRACT_KEYS = {
    "PREFECT_API_URL", "MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION",
    "S2F_DVC_REMOTE", "S2F_GIT_URL", "S2F_WORKER_HOME",
    "DO_NOT_TRACK", "MLFLOW_DISABLE_TELEMETRY", "DVC_NO_ANALYTICS", "GX_ANALYTICS_ENABLED",
    "PREFECT_SERVER_ANALYTICS_ENABLED",
}
SECRET_KEYS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"}
# Variables compose itself may interpolate (all optional, with defaults): nothing secret, so `up` needs no --env-file.
COMPOSE_VARIABLES = {"S2F_GPU_LIMIT", "S2F_GPU_WORKER_LIMIT", "S2F_PREFECT_UI_API_URL"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
_ENV_LINE = re.compile(r"^([A-Z_][A-Z0-9_]*)=([^\s\"'$]*)$")
_COMPOSE_VAR = re.compile(r"(?<!\$)\$\{?([A-Za-z_][A-Za-z0-9_]*)")  # `$VAR` / `${VAR...}`, not `$$`
_SHELL_VAR = re.compile(r"\$\$\{?([A-Za-z_][A-Za-z0-9_]*)")        # `$$VAR`: left for the container's shell


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines as compose, `set -a; .` and systemd all read them alike: no quotes, spaces or expansions."""
    env: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _ENV_LINE.match(line)
        assert match, f"{path.name}:{number}: not a plain KEY=value line: {line!r}"
        assert match.group(1) not in env, f"{path.name}:{number}: {match.group(1)} set twice"
        env[match.group(1)] = match.group(2)
    return env


def strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return []


def as_list(value: Any) -> list:
    return [] if value is None else value if isinstance(value, list) else [value]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _compose_plugin(), reason="no `docker compose` plugin here; the structural tests below stand in")
def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    infra = tmp_path / "infra"
    shutil.copytree(INFRA, infra, ignore=shutil.ignore_patterns("secrets.env"))
    shutil.copy(infra / "secrets.env.example", infra / "secrets.env")
    for profile in ([], ["--profile", "gpu"]):
        proc = subprocess.run(["docker", "compose", "-f", str(infra / "docker-compose.yml"), *profile, "config", "-q"],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_the_services_of_the_control_plane(services: dict[str, Any]) -> None:
    assert set(services) == SERVICES


def test_every_image_is_pinned_or_built_here(services: dict[str, Any]) -> None:
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", DOCKERFILE.read_text(), re.MULTILINE | re.IGNORECASE))
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        if "image" in service:
            image = service["image"]
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            assert tag and tag != "latest" and "$" not in image, f"{name}: image {image!r} is not pinned"
        if "build" in service:
            build = service["build"]
            context = (INFRA / build["context"]).resolve()
            assert (context / build["dockerfile"]).resolve() == DOCKERFILE, name
            assert build.get("target") in stages, f"{name}: no stage {build.get('target')!r} in {DOCKERFILE.name}"
            assert "image" in service, f"{name}: a built image needs a tag, or every service rebuilds its own copy"
    # one tag, one build: services sharing an image tag build it the same way
    by_image: dict[str, list[Any]] = {}
    for service in services.values():
        if "build" in service:
            by_image.setdefault(service["image"], []).append(service["build"])
    for image, builds in by_image.items():
        assert all(build == builds[0] for build in builds), image


def test_versions_match_the_lock(services: dict[str, Any]) -> None:
    lock = dict(line.split("==", 1) for line in (ROOT / "requirements.lock").read_text().splitlines() if "==" in line)
    prefect_image = services["prefect-server"]["image"]
    assert prefect_image == f"prefecthq/prefect:{lock['prefect']}-python3.11", "the server must match the clients' prefect"
    mlflow_pin = re.search(r"mlflow==(\S+)", DOCKERFILE.read_text()).group(1)
    assert mlflow_pin == lock["mlflow"]
    assert services["mlflow"]["image"].endswith(f":{lock['mlflow']}")
    python = re.search(r"^FROM python:(\d+\.\d+)", DOCKERFILE.read_text(), re.MULTILINE).group(1)
    assert python == "3.11", "pyproject requires Python 3.11"


def test_long_running_services_have_healthchecks(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", f"{name} is one-shot: a restart policy would rerun it forever"
            continue
        check = service.get("healthcheck") or {}
        test = check.get("test")
        assert test and not check.get("disable"), f"{name} has no healthcheck"
        assert test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1 and test != ["NONE"], f"{name}: {test}"
        assert service.get("restart") in {"unless-stopped", "always", "on-failure"}, name


def test_depends_on_names_services_with_conditions_they_can_meet(services: dict[str, Any]) -> None:
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: use the long form, with conditions"
        for dependency, spec in depends.items():
            assert dependency in services and dependency != name, f"{name} depends on unknown {dependency!r}"
            condition = spec["condition"]
            assert condition in CONDITIONS, f"{name} -> {dependency}: {condition}"
            if dependency in ONE_SHOT:
                assert condition == "service_completed_successfully", f"{name} -> {dependency}"
            else:
                assert condition == "service_healthy" and "healthcheck" in services[dependency], f"{name} -> {dependency}"
            # a service every profile starts cannot wait for one only `--profile gpu` starts
            assert not services[dependency].get("profiles") or service.get("profiles"), f"{name} -> {dependency}"
    # no cycles: a topological order exists
    order: list[str] = []
    pending = dict.fromkeys(services)
    while pending:
        ready = [n for n in pending if all(d in order for d in services[n].get("depends_on", {}))]
        assert ready, f"dependency cycle among {sorted(pending)}"
        order += ready
        for n in ready:
            del pending[n]
    assert order.index("prefect-server") < order.index("setup") < order.index("worker-cpu")


def test_env_files_exist_and_every_service_reads_both(services: dict[str, Any]) -> None:
    for name, service in services.items():
        files = as_list(service.get("env_file"))
        assert files == ["s2f.env", "secrets.env"], f"{name}: env_file {files}"
        for file in files:
            path = INFRA / file
            stand_in = path.with_name(path.name + ".example")
            assert path.is_file() or stand_in.is_file(), f"{name}: {file} (or {stand_in.name}) missing"


def test_published_ports_listen_on_localhost_only(services: dict[str, Any]) -> None:
    published = 0
    for name, service in services.items():
        for port in service.get("ports", []):
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1" and port.get("published"), f"{name}: {port}"
            else:
                parts = str(port).split(":")
                assert len(parts) == 3 and parts[0] == "127.0.0.1", f"{name}: {port!r} is not bound to 127.0.0.1"
            published += 1
    assert published >= 4  # S3, MinIO console, MLflow, Prefect
    assert {"4200", "5000", "9000"} <= {str(p).split(":")[1] for s in services.values() for p in s.get("ports", [])}


def test_volumes_are_declared_and_binds_exist(compose: dict[str, Any], services: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else str(volume).split(":")[0]
            if source.startswith((".", "/", "~")):
                assert (INFRA / source).exists(), f"{name}: bind source {source} missing"
            else:
                assert source in declared, f"{name}: volume {source!r} not declared"
                used.add(source)
    assert used == declared, f"declared but unused: {declared - used}"
    for name in ("postgres", "minio", "worker-cpu", "worker-gpu"):
        assert any(not str(v).startswith((".", "/")) for v in services[name]["volumes"]), f"{name} keeps no state"


def test_gpu_worker_reserves_nvidia_gpus(services: dict[str, Any]) -> None:
    gpu = services["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) and (d.get("count") or d.get("device_ids"))
               for d in devices)
    assert gpu["environment"]["NVIDIA_VISIBLE_DEVICES"] and "compute" in gpu["environment"]["NVIDIA_DRIVER_CAPABILITIES"]
    assert gpu.get("profiles") == ["gpu"], "on a machine without NVIDIA GPUs a plain `up` must not need one"
    assert gpu["build"]["args"]["TORCH_VARIANT"] == "cuda"
    assert "deploy" not in services["worker-cpu"]


def test_workers_poll_their_pools_and_serve_the_healthcheck(services: dict[str, Any]) -> None:
    for name, pool in (("worker-cpu", "cpu"), ("worker-gpu", "gpu")):
        command = services[name]["command"]
        assert command[:3] == ["prefect", "worker", "start"], name
        assert command[command.index("--pool") + 1] == pool and command[command.index("--type") + 1] == "process"
        assert "--with-healthcheck" in command, f"{name}: its healthcheck probes the worker's /health"
        assert ":8080/health" in " ".join(services[name]["healthcheck"]["test"])
        assert any(str(v).endswith(":/srv/s2f.git:ro") for v in services[name]["volumes"]), name
    setup = " ".join(strings(services["setup"]["command"]))
    for step in ("work-pool create cpu --type process", "work-pool create gpu --type process",
                 "gcl create gpu --limit", "deploy --all"):
        assert step in setup, step
    assert services["setup"]["working_dir"] == "/opt/s2f"


def test_the_image_says_where_its_code_and_checkouts_are(services: dict[str, Any]) -> None:
    image_env = dict(re.findall(r"\b(S2F_[A-Z_]+)=(\S+)", DOCKERFILE.read_text()))
    assert image_env["S2F_CODE_DIR"] == services["setup"]["working_dir"]
    assert re.search(r"^COPY\b.*\s\.\s+/opt/s2f$", DOCKERFILE.read_text(), re.MULTILINE)
    assert image_env["S2F_WORKER_HOME"] == read_env_file(INFRA / "s2f.env")["S2F_WORKER_HOME"]
    for name in ("worker-cpu", "worker-gpu"):  # the checkouts and DVC cache survive a container's restart
        assert f"worker-{name.split('-')[1]}-home:{image_env['S2F_WORKER_HOME']}" in services[name]["volumes"]
    prefect_yaml = ROOT / "prefect.yaml"
    if prefect_yaml.is_file():  # its pull step must resolve inside the image
        for var in re.findall(r"\{\{\s*\$(\w+)\s*\}\}", prefect_yaml.read_text()):
            assert var in image_env or var in read_env_file(INFRA / "s2f.env"), f"prefect.yaml needs ${var}"


def test_compose_interpolates_nothing_secret(compose: dict[str, Any]) -> None:
    interpolated = {v for s in strings(compose) for v in _COMPOSE_VAR.findall(s)}
    assert interpolated <= COMPOSE_VARIABLES, f"compose would need these from the shell: {interpolated - COMPOSE_VARIABLES}"


def test_container_shells_expand_only_variables_they_get(services: dict[str, Any]) -> None:
    env_keys = set(read_env_file(INFRA / "s2f.env")) | set(read_env_file(INFRA / "secrets.env.example"))
    for name, service in services.items():
        script = "\n".join(strings(service.get("command")))
        local = set(re.findall(r"\bfor (\w+) in\b", script)) | set(re.findall(r"\bexport (\w+)=", script))
        environment = set(service.get("environment") or {})
        for var in _SHELL_VAR.findall(script):
            assert var in env_keys | environment | local, f"{name}: $${var} is set nowhere"


def test_env_file_has_the_contract_and_no_secrets() -> None:
    env = read_env_file(INFRA / "s2f.env")
    assert CONTRACT_KEYS <= set(env), f"missing: {CONTRACT_KEYS - set(env)}"
    assert all(env.values()), [k for k, v in env.items() if not v]
    assert not set(env) & SECRET_KEYS
    assert not [k for k in env if re.search(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY|CREDENTIAL", k)]
    assert env["S2F_DVC_REMOTE"].startswith("s3://") and env["AWS_ENDPOINT_URL"] == env["MLFLOW_S3_ENDPOINT_URL"]
    assert env["PREFECT_API_URL"].endswith("/api")
    # the compose endpoints name compose services
    from urllib.parse import urlparse

    compose_services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    for key in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "AWS_ENDPOINT_URL"):
        assert urlparse(env[key]).hostname in compose_services, key
    # minio-init creates the DVC remote's bucket and the MLflow server's artifact bucket
    created = set(re.search(r"for bucket in ([^;]+);", " ".join(strings(compose_services["minio-init"]["command"])))
                  .group(1).split())
    assert urlparse(env["S2F_DVC_REMOTE"]).netloc in created
    assert urlparse(compose_services["mlflow"]["environment"]["MLFLOW_ARTIFACTS_DESTINATION"]).netloc in created


def test_secrets_example_lists_every_secret_with_placeholders() -> None:
    example = read_env_file(INFRA / "secrets.env.example")
    assert set(example) == SECRET_KEYS
    assert example["AWS_ACCESS_KEY_ID"] != example["MINIO_ROOT_USER"], "minio-init makes the client a separate user"
    assert all("change-me" in example[k] for k in SECRET_KEYS if "SECRET" in k or "PASSWORD" in k)


def test_secrets_env_is_git_ignored_and_kept_out_of_images() -> None:
    def ignored(path: str) -> bool:
        proc = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT)
        assert proc.returncode in (0, 1), "git check-ignore failed"
        return proc.returncode == 0

    assert ignored("infra/secrets.env")
    assert not ignored("infra/secrets.env.example") and not ignored("infra/s2f.env")
    dockerignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "infra/secrets.env" in dockerignore and ".venv" in dockerignore
