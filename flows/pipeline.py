"""The `pipeline` flow: the DVC DAG, each stage a task that runs the `stage` deployment of its pool.

Data stages go to `stage/cpu`, training to `stage/gpu` (s2f.orchestration.pools). The commit is fixed once at the
start so every stage builds the same code, and the stage graph is read from a checkout of it: each stage starts as
soon as the stages it needs have finished, so the partitions `preprocess@K` → `features@K` run side by side on the
`cpu` pool's workers, each pushing to the DVC remote, and `gather` starts when the last is done. A stage that fails
is retried (the task's retries start a fresh run of the deployment); each run restores whatever earlier attempts
and upstream stages already pushed, and the stages after a failed one do not start.

When every stage has completed and `register` was among them, the pipeline runs the `promote` deployment for each
model of `promote` (default: `speech2face`): the gate in params.yaml decides, and a refusal (the challenger is no
better) is reported with its reason without failing the pipeline, whose own work is done.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.deployments import run_deployment

from s2f.orchestration.checkout import resolve_commit, worker_checkout
from s2f.orchestration.pools import pool_of, select, stage_plan

STAGE_FLOW = "stage"
PROMOTE_DEPLOYMENT = "promote/default"


class StageRunFailed(RuntimeError):
    pass


@task(retries=2, retry_delay_seconds=10, task_run_name="{stage} on {pool}")
def run_stage(stage: str, pool: str, repo: str, commit: str) -> str:
    """Run `stage/<pool>` for one stage and wait for it; a non-completed run fails the task (and is retried)."""
    run = run_deployment(f"{STAGE_FLOW}/{pool}", parameters={"stage": stage, "repo": repo, "commit": commit,
                                                             "pool": pool}, timeout=None)
    if not run.state.is_completed():
        raise StageRunFailed(f"stage {stage} on pool {pool}: flow run {run.name} ended {run.state.name}: "
                             f"{run.state.message}")
    return str(run.id)


@task(task_run_name="promote {model}")
def run_promotion(model: str) -> str:
    """The `promote` deployment for `model`: its decision, in one line (a refusal is an answer, not an error)."""
    run = run_deployment(PROMOTE_DEPLOYMENT, parameters={"model": model}, timeout=None)
    if run.state.is_completed():
        return f"{model}: promoted (flow run {run.name})"
    return f"{model}: not promoted (flow run {run.name}): {run.state.message}"


@flow(name="pipeline", log_prints=True)
def pipeline(repo: str | None = None, rev: str = "HEAD", stages: list[str] | None = None,
             promote: list[str] | None = None) -> list[str]:
    """Every stage of dvc.yaml (or `stages`; `train_gan` means all its families) at `rev` of `repo` (default:
    S2F_GIT_URL, else this directory), then the promotion gate for each of `promote` (default `["speech2face"]`;
    `[]` skips it) if `register` ran; returns the stage flow runs' ids in plan order."""
    repo = repo or os.environ.get("S2F_GIT_URL") or str(Path.cwd())
    commit = resolve_commit(repo, rev)
    with worker_checkout(repo, commit) as checkout:
        plan = select(stage_plan(checkout), stages)
    get_run_logger().info("pipeline at %s of %s: %s", commit[:12], repo,
                          "; ".join(f"{s} after {', '.join(needs)}" if needs else s for s, needs in plan.items()))
    runs = {}
    for stage, needs in plan.items():
        runs[stage] = run_stage.submit(stage, pool_of(stage), repo, commit, wait_for=[runs[n] for n in needs])
    ids = [run.result() for run in runs.values()]
    if "register" in plan:
        for model in ["speech2face"] if promote is None else promote:
            get_run_logger().info(run_promotion(model))
    return ids
