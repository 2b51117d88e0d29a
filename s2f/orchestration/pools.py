"""Which work pool runs which DVC stage (data stages need CPUs, training a GPU), and the order they may run in.

The plan is DVC's own stage graph, read from a checkout at the pipeline's commit: every stage with the stages it
needs, so the `pipeline` flow starts each as soon as those are done. That is what fans out the partitions
(`download@K`, then `preprocess@K` → `features@K`, one DVC stage each) over the `cpu` pool's workers and the GAN
families (`train_gan@wen2019`, …) over the GPUs, while `collect` and `gather` wait for every partition.
"""

from __future__ import annotations

from pathlib import Path

from s2f.cli import STAGES

CPU_POOL = "cpu"
GPU_POOL = "gpu"
GPU_LIMIT = "gpu"  # the Prefect global concurrency limit: one training run per GPU
GPU_STAGES = frozenset({"train_decoder", "train_encoder", "train_gan"})  # train_gan: every family of params

Plan = dict[str, list[str]]  # stage → the stages it needs, in an order where each comes after those


def base_stage(stage: str) -> str:
    """`preprocess@1` → `preprocess`: the dvc.yaml entry a foreach item belongs to."""
    return stage.split("@", 1)[0]


def pool_of(stage: str) -> str:
    base = base_stage(stage)
    if base not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; the pipeline's stages are {', '.join(STAGES)}")
    return GPU_POOL if base in GPU_STAGES else CPU_POOL


def stage_plan(checkout: Path) -> Plan:
    """Every stage of the DVC project at `checkout` (foreach items one by one) with the stages it needs."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(checkout)) as repo:
        graph = repo.index.graph.reverse()  # DVC's edges point from a stage to what it needs
        rank = {name: i for i, name in enumerate(STAGES)}
        order = nx.lexicographical_topological_sort(
            graph, key=lambda s: (rank.get(base_stage(s.name), len(STAGES)), s.name))
        return {s.name: sorted(p.name for p in graph.predecessors(s)) for s in order}


def select(plan: Plan, stages: list[str] | None = None) -> Plan:
    """The chosen stages (a name such as `train_gan` takes all its items) with what they need among the chosen;
    stages left out are restored or built by `dvc repro --pull` where a chosen one needs them."""
    if not stages:
        return plan
    known = set(plan) | {base_stage(s) for s in plan}
    unknown = sorted(set(stages) - known)
    if unknown:
        raise ValueError(f"unknown stages {unknown}; the pipeline's stages are {', '.join(plan)}")
    chosen = [s for s in plan if s in stages or base_stage(s) in stages]
    return {s: [n for n in plan[s] if n in chosen] for s in chosen}
