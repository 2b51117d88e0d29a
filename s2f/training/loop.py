"""One training loop for every model: AMP on CUDA, DDP under `torchrun`, checkpoints, exact resume.

A checkpoint (`s2f.training.checkpoint`) holds everything the next step depends on: weights, optimiser and scheduler
state, the step, the RNG states, the partial sums of the epoch being logged and the curve so far. Batches are a pure
function of (seed, step) (see `s2f.training.data`), so a run killed at any point and resumed from its last checkpoint
ends with the same weights as a run never interrupted (on CPU, where kernels are deterministic). A checkpoint also
carries a fingerprint of the run's settings, data and training code: one written under other params, data or
code is ignored, never resumed.

A model that needs more than the loss (the encoder's loss-weight calibration at a set step, its validation speakers
scored every epoch) passes `Hooks`: called at those points, their state saved in every checkpoint and restored on
resume, so that a resumed run still ends bit-identical. Without hooks `fit` is the plain loop.

`Run` is what `fit` and the GANs' `s2f.training.adversarial.fit_adversarial` share around their steps: the resume,
the loader, the per-epoch rows and the checkpoints.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from s2f.io.shards import work_key
from s2f.lineage import closure_hash
from s2f.training.checkpoint import Progress, Stateful, load_checkpoint, save_checkpoint
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


# the code a training result depends on (their import closures, s2f.lineage): a fix to it must retrain, not resume
# a finished run of the old code
TRAINING_CODE = ("s2f.training.encoder", "s2f.training.decoder")


def fingerprint(*parts: object) -> str:
    """A short hash of settings, data identity and the training code, so a checkpoint is only resumed by the run
    that wrote it."""
    return work_key([closure_hash(*TRAINING_CODE), *parts])[:16]


def data_digest(*arrays) -> str:
    """What a checkpoint was trained on: arrays by content, shard columns (`s2f.dataset.ShardColumn`) by their
    files and rows (hashing a corpus's every row is not affordable at scale)."""
    digest = hashlib.sha256()
    for a in arrays:
        if hasattr(a, "digest"):
            digest.update(a.digest().encode())
            continue
        digest.update(str(a.shape).encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()[:16]


def autocast(device: torch.device, enabled: bool = True):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


class Run:
    """One training run's bookkeeping around its optimizer steps, the same for `fit` and `fit_adversarial`.

    `objects`: what the next step depends on besides the RNGs (models, optimisers, schedulers, hook state), saved
    and restored by name. Building a Run resumes from `settings.checkpoint` when its fingerprint matches (restoring
    `objects` and the RNGs: move the models to their device first, so that optimisers load their state there) and
    replays the curve so far to `log` on rank 0; `batches` then start at the step reached.
    """

    def __init__(self, objects: dict[str, Stateful], batches: StepBatches, settings: LoopSettings, runtime: Runtime,
                 log: LogFn):
        self.objects, self.batches, self.settings, self.runtime, self.log = objects, batches, settings, runtime, log
        self.progress = load_checkpoint(settings.checkpoint, settings.fingerprint, objects) or Progress()
        if self.progress.step:
            print(f"resuming from step {self.progress.step} of {batches.steps} ({settings.checkpoint})")
        if runtime.is_main:
            for epoch, row in enumerate(self.progress.history):
                log(epoch, row)
        batches.start = self.progress.step

    def loader(self, dataset: Dataset) -> DataLoader:
        """The batches of the steps left. Starting the iteration draws a seed from the loader's own generator (not
        the global RNG: see `make_loader`), reseeded here rather than checkpointed: the resumed run's draw must be
        the uninterrupted run's first one, which its state saved after that draw would not give."""
        return make_loader(dataset, self.batches, self.settings.workers,
                           pin_memory=self.runtime.device.type == "cuda",
                           generator=torch.Generator().manual_seed(self.batches.seed))

    def count_step(self, terms: dict[str, torch.Tensor], n: int) -> bool:
        """Count an optimizer step (its loss `terms` over a batch of `n`); True when it ends an epoch."""
        self.progress.add(terms, n)
        return self.progress.step % self.batches.steps_per_epoch == 0 or self.progress.step == self.batches.steps

    def end_epoch(self, rates: dict[str, float], extra: Callable[[int], dict[str, float]] | None = None) -> int:
        """Close the epoch: its row (each term's mean over the epoch and the ranks, `rates`, the step, then
        `extra(epoch)`, called on every rank) onto the curve and to `log` on rank 0; returns the epoch's number."""
        epoch = len(self.progress.history)
        row = mean_across_ranks(self.progress.close_epoch(), self.runtime) | rates | {"step": self.progress.step}
        if extra is not None:
            row |= extra(epoch)
        self.progress.history.append(row)
        if self.runtime.is_main:
            self.log(epoch, row)
        return epoch

    def checkpoint_if_due(self) -> None:
        """On rank 0, every `checkpoint_every` steps and after the last one."""
        s, step = self.settings, self.progress.step
        if s.checkpoint and s.checkpoint_every and self.runtime.is_main and (
                step % s.checkpoint_every == 0 or step == self.batches.steps):
            save_checkpoint(s.checkpoint, s.fingerprint, self.progress, self.objects)


def fit(model: nn.Module, step_loss: StepLoss, dataset, batches: StepBatches, opt: torch.optim.Optimizer, sched,
        settings: LoopSettings, runtime: Runtime, log: LogFn, hooks: Hooks | None = None) -> list[dict[str, float]]:
    """Train `model` in place for the steps of `batches` (one logged row per epoch); returns the per-epoch curve (also passed to `log`).

    `step_loss(model, batch, device)` returns the loss terms with the one to minimise under "total".
    `log(epoch, row)` is called on rank 0 only, also for epochs replayed from a checkpoint's history.
    `hooks` (optional): see `Hooks`.
    """
    hooks = hooks or Hooks()
    model.to(runtime.device)
    objects = {"model": model, "optimizer": opt, "scheduler": sched}
    run = Run(objects | ({"hooks": hooks.state} if hooks.state is not None else {}), batches, settings, runtime, log)
    wrapped = DistributedDataParallel(model) if runtime.distributed else model

    def end_epoch(epoch: int) -> dict[str, float]:
        row = hooks.end_epoch(epoch)
        model.train()
        return row

    model.train()
    for batch in run.loader(dataset):
        if hooks.before_step is not None:
            hooks.before_step(run.progress.step)
        with autocast(runtime.device, settings.amp):
            terms = step_loss(wrapped, batch, runtime.device)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()
        sched.step()
        if run.count_step(terms, len(batch[0])):
            run.end_epoch({"lr": sched.get_last_lr()[0]}, end_epoch if hooks.end_epoch is not None else None)
        run.checkpoint_if_due()
    model.eval()
    return run.progress.history
