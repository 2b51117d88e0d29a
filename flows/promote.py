"""The `promote` flow: the gate of `s2f promote`, or a rollback. A refusal fails the run with the reason
(`PromotionRefused`), and the decision is also recorded on the model version."""

from __future__ import annotations

from prefect import flow, get_run_logger

from s2f.config import load_section
from s2f.io.tracking import tracking_uri
from s2f.promotion import promote_or_rollback


@flow(name="promote", log_prints=True)
def promote(rollback: bool = False, params: str = "params.yaml") -> str:
    """Move `champion` to `speech2face@challenger` if it passes the gate in `params`, or roll back."""
    import mlflow

    gate = None if rollback else load_section("promote", params)
    message = promote_or_rollback(mlflow.MlflowClient(tracking_uri()), gate)
    get_run_logger().info(message)
    return message
