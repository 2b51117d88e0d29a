"""The `stage` flow: one DVC stage on a worker, in that worker's own checkout.

Deployed twice (prefect.yaml): `stage/cpu` on the `cpu` work pool and `stage/gpu` on the `gpu` pool. A run on the
GPU pool first takes a slot of the global concurrency limit `gpu` (one training run per GPU; strict, so a missing
limit fails the run instead of silently oversubscribing). Then `dvc repro --pull STAGE` and `dvc push --run-cache`.
"""

from __future__ import annotations

import re
from contextlib import nullcontext

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.concurrency.sync import concurrency

from s2f.orchestration.checkout import worker_checkout
from s2f.orchestration.dvc_stage import publish, repro
from s2f.orchestration.pools import GPU_LIMIT, GPU_POOL, pool_of


@flow(name="stage", flow_run_name="{stage} on {pool}", log_prints=True)
def stage(stage: str, repo: str, commit: str, pool: str = "cpu") -> dict:
    """`dvc repro --pull STAGE` at `commit` of `repo` in this worker's checkout, then publish to the DVC remote."""
    logger = get_run_logger()
    if pool != pool_of(stage):
        raise ValueError(f"stage {stage} belongs on the {pool_of(stage)} pool, not {pool} (s2f/orchestration/pools.py)")
    slot = concurrency(GPU_LIMIT, occupy=1, strict=True) if pool == GPU_POOL else nullcontext()
    with slot, worker_checkout(repo, commit) as path:
        logger.info("checkout %s at %s", path, commit[:12])
        logger.info("dvc repro --pull %s", stage)
        report, _ = repro(path, stage, on_line=logger.info)  # each line of the stage's output as it comes
        logger.info(publish(path)[-1500:])
    summary = report.as_dict()
    create_markdown_artifact(
        key=re.sub(r"[^a-z0-9-]", "-", f"stage-{stage.lower()}"),  # artifact keys: lowercase, digits, dashes
        markdown=(f"**{stage}** on `{pool}` at `{commit[:12]}` in {summary['seconds']} s, in `{path}`  \n"
                  f"ran: {summary['ran'] or '—'}  \nrestored from the run-cache: {summary['restored'] or '—'}  \n"
                  f"unchanged: {summary['unchanged'] or '—'}"),
        description=f"what dvc repro did for {stage}")
    return summary
