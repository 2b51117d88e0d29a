"""Which pool runs which stage, and that the pipeline flow's plan is DVC's own stage graph."""

from __future__ import annotations

import pytest
import yaml

from s2f.orchestration.pools import pool_of, select, stage_plan
from tests.conftest import ROOT
from tests.tiny_repo import make_tiny_repo


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    """The plan of the project's dvc.yaml with two download and three preprocess partitions."""
    return stage_plan(make_tiny_repo(tmp_path_factory.mktemp("plan"), {"data": {"partitions": [0, 1]},
                                                                      "preprocess": {"partitions": [0, 1, 2]}}))


def test_every_partition_is_a_stage_that_needs_only_its_own_upstream(plan):
    assert plan["download@1"] == [] and plan["collect"] == ["download@0", "download@1"]
    assert plan["preprocess@1"] == ["collect"]
    assert plan["features@1"] == ["preprocess@1"]
    assert plan["gather"] == ["features@0", "features@1", "features@2",
                              "preprocess@0", "preprocess@1", "preprocess@2"]
    assert plan["train_decoder"] == ["gather"]


def test_each_stage_comes_after_what_it_needs(plan):
    order = list(plan)
    assert order[:2] == ["download@0", "download@1"] and order[-1] == "register"
    for stage, needs in plan.items():
        assert all(order.index(n) < order.index(stage) for n in needs), stage
    families = yaml.safe_load((ROOT / "params.yaml").read_text())["train_gan"]["families"]
    assert {f"train_gan@{f}" for f in families} <= set(plan)


def test_training_runs_on_the_gpu_pool_and_everything_else_on_cpu(plan):
    pools = {stage: pool_of(stage) for stage in plan}
    assert {s for s, p in pools.items() if p == "gpu"} == {
        s for s in plan if s.split("@")[0] in ("train_decoder", "train_encoder", "train_gan")}
    assert pools["preprocess@2"] == pools["gather"] == pools["evaluate"] == "cpu"


def test_a_subset_keeps_only_the_chosen_stages_and_unknown_stages_are_named(plan):
    chosen = select(plan, ["register", "evaluate", "train_gan"])
    assert list(chosen)[-2:] == ["evaluate", "register"]
    assert "evaluate" in chosen["register"] and "train_encoder" not in chosen["evaluate"]
    assert {s for s in chosen if s.startswith("train_gan@")} == {s for s in plan if s.startswith("train_gan@")}
    with pytest.raises(ValueError, match="trian_encoder"):
        select(plan, ["trian_encoder"])
    with pytest.raises(ValueError, match="unknown stage 'x'"):
        pool_of("x")


def test_prefect_yaml_deploys_a_stage_flow_per_pool():
    deployments = {d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    assert deployments["cpu"]["work_pool"]["name"] == "cpu" and deployments["gpu"]["work_pool"]["name"] == "gpu"
    assert deployments["gpu"]["parameters"]["pool"] == "gpu"
    assert {d["entrypoint"] for d in deployments.values()} == {
        "flows/pipeline.py:pipeline", "flows/stage.py:stage", "flows/promote.py:promote", "flows/infer.py:infer"}
