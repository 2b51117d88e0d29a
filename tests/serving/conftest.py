"""Fixtures of the serving tests: a fresh MLflow tracking store per test module, and `mlflow models serve` of a model
registered in it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from s2f.io.http import wait_until_answers
from tests.s3_server import free_port

BIN = Path(sys.executable).parent   # the venv's bin: `mlflow models serve` execs `uvicorn` from PATH


@dataclass
class Store:
    root: Path      # a fresh folder holding the store and its artifacts
    uri: str        # the tracking URI


@pytest.fixture(scope="module")
def tracking_store(tmp_path_factory) -> Iterator[Store]:
    """A fresh SQLite store with an experiment of its own: the tracking URI (environment and mlflow) of the module's
    tests, with the venv's bin on PATH, until the module ends."""
    import mlflow

    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlruns.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
        mlflow.set_tracking_uri(uri)
        try:
            mlflow.set_experiment(experiment_id=mlflow.create_experiment(
                "serving", artifact_location=(root / "mlartifacts").as_uri()))
            yield Store(root, uri)
        finally:
            mlflow.set_tracking_uri(None)   # back to the environment's (restored by the context) for later tests


@pytest.fixture(scope="module")
def serve(tmp_path_factory) -> Iterator[Callable[[str, str], str]]:
    """`serve(model_uri, tracking_uri)`: `mlflow models serve -m MODEL_URI` on 127.0.0.1 in its own process group;
    its URL once /ping is 200. Stopped when the module ends."""
    procs: list[subprocess.Popen] = []

    def start(model_uri: str, tracking_uri: str) -> str:
        port = free_port()
        log = tmp_path_factory.mktemp("server") / "serve.log"
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        with open(log, "wb") as out:
            procs.append(subprocess.Popen([str(BIN / "mlflow"), "models", "serve", "-m", model_uri,
                                           "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                                          env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(url, procs[-1], log)
        return url

    yield start
    for proc in procs:
        _stop(proc)


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    if wait_until_answers(f"{url}/ping", timeout, gave_up=lambda: proc.poll() is not None):
        return
    if proc.poll() is not None:
        pytest.fail(f"mlflow models serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
    pytest.fail(f"mlflow models serve not up after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
