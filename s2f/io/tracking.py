"""MLflow tracking for the stages: an embedded SQLite store in the project by default, a server when configured.

`MLFLOW_TRACKING_URI` (e.g. http://127.0.0.1:5000) overrides the default `sqlite:///<cwd>/mlruns.db`. Where a new
experiment keeps its artifacts:
- `S2F_ARTIFACT_URI` when set (e.g. `s3://bucket/mlflow`: clients write to S3 themselves, with
  `MLFLOW_S3_ENDPOINT_URL` for an S3-compatible server);
- else, for a SQLite store, `mlartifacts/` beside the database file: every worker checkout that shares one database
  also shares its artifacts (a relative default would scatter them over checkouts);
- else the server decides (an `mlflow server --artifacts-destination s3://…` proxies them).
Entered as a context manager by the stages only, so library code never touches MLflow.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

EXPERIMENT = "speech2face"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlruns.db').resolve()}"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except OSError:
        return "unknown"


def artifact_location() -> str | None:
    """Where a new experiment's artifacts go (see the module docstring); None lets the tracking server decide."""
    if os.environ.get("S2F_ARTIFACT_URI"):
        return os.environ["S2F_ARTIFACT_URI"]
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()
    return None


def use_experiment(name: str | None = None) -> str:
    """Point MLflow at the tracking store and the experiment (created on first use); returns the experiment name."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    experiment = name or os.environ.get("S2F_EXPERIMENT", EXPERIMENT)
    if mlflow.get_experiment_by_name(experiment) is None:
        try:
            mlflow.create_experiment(experiment, artifact_location=artifact_location())
        except mlflow.exceptions.MlflowException:  # created meanwhile by a stage on another worker
            if mlflow.get_experiment_by_name(experiment) is None:
                raise
    mlflow.set_experiment(experiment)
    return experiment


@contextmanager
def main_process_run(stage: str, params: dict, is_main: bool) -> Iterator["object | None"]:
    """`stage_run` on the main process of a distributed job; the other ranks log nothing."""
    if not is_main:
        yield None
        return
    with stage_run(stage, params) as run:
        yield run


@contextmanager
def stage_run(stage: str, params: dict) -> Iterator["object"]:
    """An MLflow run named after the stage, with its params section logged and the git commit tagged."""
    import mlflow

    use_experiment()
    with mlflow.start_run(run_name=stage, tags={"stage": stage, "git_commit": git_commit()}) as run:
        mlflow.log_params(_flatten(params))
        yield run


class EpochCurve:
    """The per-epoch callback the training loops take: keeps the rows (for the DVC plot) and logs them to MLflow."""

    def __init__(self, prefix: str = "") -> None:
        self.rows: list[dict] = []
        self.prefix = prefix

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        import mlflow

        self.rows.append({"epoch": epoch, **metrics})
        mlflow.log_metrics({f"{self.prefix}{k}": v for k, v in metrics.items()}, step=epoch)

    @property
    def last(self) -> dict[str, float]:
        return {k: v for k, v in self.rows[-1].items() if k != "epoch"}


def log_model_files(weights: Path) -> None:
    """Log a saved model (weights and its JSON config) under the run's `model/` artifacts."""
    import mlflow

    for path in (weights, weights.with_suffix(".json")):
        mlflow.log_artifact(str(path), "model")


def _flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:500]
    return flat
