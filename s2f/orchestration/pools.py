"""Which work pool runs which DVC stage: data stages need CPUs, training needs a GPU."""

from __future__ import annotations

from s2f.cli import STAGES

CPU_POOL = "cpu"
GPU_POOL = "gpu"
GPU_LIMIT = "gpu"  # the Prefect global concurrency limit: one training run per GPU
GPU_STAGES = frozenset({"train_decoder", "train_encoder", "train_gan"})  # train_gan: every family of params


def pool_of(stage: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; the pipeline's stages are {', '.join(STAGES)}")
    return GPU_POOL if stage in GPU_STAGES else CPU_POOL


def plan(stages: list[str] | None = None) -> list[tuple[str, str]]:
    """(stage, pool) in pipeline order: all stages, or the given ones (order as in the pipeline)."""
    chosen = STAGES if not stages else [s for s in STAGES if s in set(stages)]
    unknown = set(stages or ()) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}; the pipeline's stages are {', '.join(STAGES)}")
    return [(stage, pool_of(stage)) for stage in chosen]
