"""One training loop for every model: AMP on CUDA, DDP under `torchrun`, checkpoints, exact resume.

A checkpoint holds everything the next step depends on: weights, optimiser and scheduler state, the step, the RNG
states, the partial sums of the epoch being logged and the curve so far. Batches are a pure function of
(seed, step) (see `s2f.training.data`), so a run killed at any point and resumed from its last checkpoint ends
with the same weights as a run never interrupted (on CPU, where kernels are deterministic). A checkpoint also
carries a fingerprint of the run's settings, data and training code: one written under other params, data or
code is ignored, never resumed.
It is written to a temporary file and renamed, so a kill during the write leaves the previous one intact.

A model that needs more than the loss (the encoder's loss-weight calibration at a set step, its validation speakers
scored every epoch) passes `Hooks`: called at those points, their state saved in every checkpoint and restored on
resume, so that a resumed run still ends bit-identical. Without hooks `fit` is the plain loop.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from s2f.io.shards import work_key
from s2f.lineage import closure_hash
from s2f.training.data import StepBatches, make_loader
from s2f.training.distributed import Runtime, mean_across_ranks

LogFn = Callable[[int, dict[str, float]], None]
StepLoss = Callable[[nn.Module, tuple, torch.device], dict[str, torch.Tensor]]


@dataclass
class LoopSettings:
    checkpoint_every: int = 0        # steps; 0: no checkpoints
    checkpoint: Path | None = None   # the checkpoint file (resumed from when its fingerprint matches)
    fingerprint: str = ""            # settings + data identity; a checkpoint with another one is not resumed
    amp: bool = True                 # bf16 autocast on CUDA (no loss scaling needed); ignored on CPU
    workers: int = 0                 # DataLoader worker processes


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class Hooks:
    """Optional extensions of `fit` for one model's needs; every one is called on every rank.

    before_step(step): before optimizer step `step` (0-based) runs, outside autocast; the model is in train mode
    and must be left so.
    end_epoch(epoch) → numbers added to that epoch's row (after the training terms are averaged, before the row
    is logged and checkpointed); the loop puts the model back in train mode afterwards.
    state: what the hooks must carry across a resume (`state_dict` of tensors, numbers, strings, lists and dicts:
    checkpoints load with weights_only=True), saved in every checkpoint.
    """

    before_step: Callable[[int], None] | None = None
    end_epoch: Callable[[int], dict[str, float]] | None = None
    state: Stateful | None = None


@dataclass
class Progress:
    step: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


# the code a training result depends on (their import closures, s2f.lineage): a fix to it must retrain, not resume
# a finished run of the old code
TRAINING_CODE = ("s2f.training.encoder", "s2f.training.decoder")


def fingerprint(*parts: object) -> str:
    """A short hash of settings, data identity and the training code, so a checkpoint is only resumed by the run
    that wrote it."""
    return work_key([closure_hash(*TRAINING_CODE), *parts])[:16]


def data_digest(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for a in arrays:
        digest.update(str(a.shape).encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()[:16]


def autocast(device: torch.device, enabled: bool = True):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer, sched, progress: Progress,
                    fingerprint: str, extra: Stateful | None = None) -> None:
    state = {
        "fingerprint": fingerprint, "step": progress.step, "sums": progress.sums, "count": progress.count,
        "history": progress.history, "model": model.state_dict(), "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(), "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "hooks": extra.state_dict() if extra is not None else None,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path | None, expected: str, model: nn.Module, opt, sched,
                    extra: Stateful | None = None) -> Progress | None:
    """Restore a matching checkpoint into model, optimiser, scheduler, the RNGs and `extra` (the hooks' state);
    None when there is none."""
    if path is None or not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("fingerprint") != expected:
        print(f"checkpoint {path} was written by other settings or data: starting afresh")
        return None
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng_cpu"])
    if state["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    if extra is not None and state.get("hooks") is not None:
        extra.load_state_dict(state["hooks"])
    return Progress(state["step"], dict(state["sums"]), state["count"], list(state["history"]))


def fit(model: nn.Module, step_loss: StepLoss, dataset, batches: StepBatches, opt: torch.optim.Optimizer, sched,
        settings: LoopSettings, runtime: Runtime, log: LogFn, hooks: Hooks | None = None) -> list[dict[str, float]]:
    """Train `model` in place for the steps of `batches` (one logged row per epoch); returns the per-epoch curve (also passed to `log`).

    `step_loss(model, batch, device)` returns the loss terms with the one to minimise under "total".
    `log(epoch, row)` is called on rank 0 only, also for epochs replayed from a checkpoint's history.
    `hooks` (optional): see `Hooks`.
    """
    hooks = hooks or Hooks()
    model.to(runtime.device)
    progress = load_checkpoint(settings.checkpoint, settings.fingerprint, model, opt, sched, hooks.state) or Progress()
    if progress.step:
        print(f"resuming from step {progress.step} of {batches.steps} ({settings.checkpoint})")
    if runtime.is_main:
        for epoch, row in enumerate(progress.history):
            log(epoch, row)
    wrapped = DistributedDataParallel(model) if runtime.distributed else model
    batches.start = progress.step
    loader = make_loader(dataset, batches, settings.workers, pin_memory=runtime.device.type == "cuda",
                         generator=torch.Generator().manual_seed(batches.seed))  # not the global RNG: see make_loader
    model.train()
    for batch in loader:
        if hooks.before_step is not None:
            hooks.before_step(progress.step)
        with autocast(runtime.device, settings.amp):
            terms = step_loss(wrapped, batch, runtime.device)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()
        sched.step()
        progress.step += 1
        _accumulate(progress, terms, len(batch[0]))
        if progress.step % batches.steps_per_epoch == 0 or progress.step == batches.steps:
            _end_epoch(progress, sched, runtime, log, hooks, model)
        if settings.checkpoint and settings.checkpoint_every and runtime.is_main and (
                progress.step % settings.checkpoint_every == 0 or progress.step == batches.steps):
            save_checkpoint(settings.checkpoint, model, opt, sched, progress, settings.fingerprint, hooks.state)
    model.eval()
    return progress.history


def _accumulate(progress: Progress, terms: dict[str, torch.Tensor], n: int) -> None:
    for key, value in terms.items():
        progress.sums[key] = progress.sums.get(key, 0.0) + float(value.detach()) * n
    progress.count += n


def _end_epoch(progress: Progress, sched, runtime: Runtime, log: LogFn, hooks: Hooks | None = None,
               model: nn.Module | None = None) -> None:
    row = {f"loss_{k}": v / max(progress.count, 1) for k, v in sorted(progress.sums.items())}
    row = mean_across_ranks(row, runtime) | {"lr": sched.get_last_lr()[0], "step": progress.step}
    if hooks is not None and hooks.end_epoch is not None:
        row |= hooks.end_epoch(len(progress.history))
        if model is not None:
            model.train()
    progress.history.append(row)
    progress.sums, progress.count = {}, 0
    if runtime.is_main:
        log(len(progress.history) - 1, row)
