"""The `promote` flow: the gate of `s2f promote`, or a rollback. A refusal fails the run with the reason
(`PromotionRefused`), and the decision is also recorded on the model version."""

from __future__ import annotations

from prefect import flow, get_run_logger

from s2f.config import load_section
from s2f.io.tracking import tracking_uri
from s2f.promotion import promote_or_rollback


@flow(name="promote", log_prints=True)
def promote(rollback: bool = False, params: str = "params.yaml", model: str = "speech2face") -> str:
    """Move `champion` to `<model>@challenger` if it passes the gate in `params`, or roll back; `model` is
    `speech2face` or a GAN family (`wen2019`, `wav2pix`)."""
    import mlflow

    gate = None if rollback else load_section("promote", params)
    message = promote_or_rollback(mlflow.MlflowClient(tracking_uri()), gate, model)
    get_run_logger().info(message)
    return message
