"""Which pool runs which stage, and that the pipeline flow's plan is exactly dvc.yaml's stages in order."""

from __future__ import annotations

import pytest
import yaml

from s2f.orchestration.pools import plan, pool_of
from tests.conftest import ROOT


def test_plan_is_every_dvc_stage_in_pipeline_order():
    stages = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
    assert [stage for stage, _ in plan()] == stages


def test_training_runs_on_the_gpu_pool_and_everything_else_on_cpu():
    assert dict(plan()) == {"download": "cpu", "preprocess": "cpu", "features": "cpu", "train_decoder": "gpu",
                            "train_encoder": "gpu", "train_gan": "gpu", "evaluate": "cpu", "register": "cpu"}


def test_a_subset_keeps_pipeline_order_and_unknown_stages_are_named():
    assert plan(["register", "evaluate"]) == [("evaluate", "cpu"), ("register", "cpu")]
    with pytest.raises(ValueError, match="trian_encoder"):
        plan(["trian_encoder"])
    with pytest.raises(ValueError, match="unknown stage 'x'"):
        pool_of("x")


def test_prefect_yaml_deploys_a_stage_flow_per_pool():
    deployments = {d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    assert deployments["cpu"]["work_pool"]["name"] == "cpu" and deployments["gpu"]["work_pool"]["name"] == "gpu"
    assert deployments["gpu"]["parameters"]["pool"] == "gpu"
    assert {d["entrypoint"] for d in deployments.values()} == {
        "flows/pipeline.py:pipeline", "flows/stage.py:stage", "flows/promote.py:promote", "flows/infer.py:infer"}
