"""The training loop of the voice → face GANs: alternating D and G steps, both optimisers checkpointed, exact resume.

It keeps the contract of `s2f.training.loop.fit` (batches a pure function of (seed, step), every RNG state in the
checkpoint, a fingerprint so a checkpoint is only resumed by the run that wrote it, bf16 autocast on CUDA) and adds
what a GAN needs: two optimisers over two parameter sets, and two losses per step (first D's, then G's).

Why gradients are averaged by hand under `torchrun` rather than by wrapping modules in DistributedDataParallel: a GAN
step runs the generator in D's step without training it and the discriminator in G's step without training it;
DDP's bucketed reduction expects each forward of a wrapped module to be followed by a backward through all of it,
and fails (or needs find_unused_parameters and still mis-syncs) when it is not. One all-reduce of the stepped
parameters' gradients after each backward is what DDP computes, without that coupling.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from s2f.training.data import StepBatches, make_loader
from s2f.training.distributed import Runtime, mean_across_ranks
from s2f.training.loop import LogFn, LoopSettings, Progress, autocast

Batch = dict[str, torch.Tensor]
GanLoss = Callable[[nn.ModuleDict, Batch], dict[str, torch.Tensor]]
EpochHook = Callable[[int], None]


@dataclass
class GanSteps:
    """One family's side of the loop: its networks, the two losses and the optimiser of each side."""

    models: nn.ModuleDict
    d_loss: GanLoss                   # terms with the one to minimise under "total"
    g_loss: GanLoss
    opt_d: torch.optim.Optimizer      # over the parameters D's step trains
    opt_g: torch.optim.Optimizer      # over the parameters G's step trains


def save_checkpoint(path: Path, steps: GanSteps, progress: Progress, fingerprint: str) -> None:
    state = {"fingerprint": fingerprint, "step": progress.step, "sums": progress.sums, "count": progress.count,
             "history": progress.history, "models": steps.models.state_dict(),
             "opt_d": steps.opt_d.state_dict(), "opt_g": steps.opt_g.state_dict(),
             "rng_cpu": torch.get_rng_state(),
             "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a kill during the write leaves the previous checkpoint intact


def load_checkpoint(path: Path | None, expected: str, steps: GanSteps) -> Progress | None:
    """Restore a matching checkpoint into the networks, both optimisers and the RNGs; None when there is none."""
    if path is None or not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("fingerprint") != expected:
        print(f"checkpoint {path} was written by other settings or data: starting afresh")
        return None
    steps.models.load_state_dict(state["models"])
    steps.opt_d.load_state_dict(state["opt_d"])
    steps.opt_g.load_state_dict(state["opt_g"])
    torch.set_rng_state(state["rng_cpu"])
    if state["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    return Progress(state["step"], dict(state["sums"]), state["count"], list(state["history"]))


def fit_adversarial(steps: GanSteps, dataset, batches: StepBatches, settings: LoopSettings, runtime: Runtime,
                    log: LogFn, on_epoch: EpochHook | None = None) -> list[dict[str, float]]:
    """Train the family's networks in place, one D step then one G step per batch; returns the per-epoch curve.

    Logged rows hold every term of both losses (`loss_d_<term>`, `loss_g_<term>`). `on_epoch(epoch)` runs on rank 0
    after each epoch's row is logged (the sample grid), also not for epochs replayed from a checkpoint.
    """
    steps.models.to(runtime.device)  # before loading: Adam's load_state_dict moves its state to the weights' device
    progress = load_checkpoint(settings.checkpoint, settings.fingerprint, steps) or Progress()
    if progress.step:
        print(f"resuming from step {progress.step} of {batches.steps} ({settings.checkpoint})")
    if runtime.is_main:
        for epoch, row in enumerate(progress.history):
            log(epoch, row)
    if runtime.distributed:
        _broadcast_parameters(steps.models)
    batches.start = progress.step
    loader = make_loader(dataset, batches, settings.workers, pin_memory=runtime.device.type == "cuda",
                         generator=torch.Generator().manual_seed(batches.seed))
    _train_mode(steps.models)
    for batch in loader:
        batch = {k: v.to(runtime.device, non_blocking=True) for k, v in batch.items()}
        terms = {f"d_{k}": v for k, v in _step(steps.d_loss, steps.opt_d, steps, batch, settings, runtime).items()}
        terms |= {f"g_{k}": v for k, v in _step(steps.g_loss, steps.opt_g, steps, batch, settings, runtime).items()}
        progress.step += 1
        _accumulate(progress, terms, len(batch["face"]))
        if progress.step % batches.steps_per_epoch == 0 or progress.step == batches.steps:
            _end_epoch(progress, steps, runtime, log, on_epoch)
        if settings.checkpoint and settings.checkpoint_every and runtime.is_main and (
                progress.step % settings.checkpoint_every == 0 or progress.step == batches.steps):
            save_checkpoint(settings.checkpoint, steps, progress, settings.fingerprint)
    steps.models.eval()
    return progress.history


def _train_mode(models: nn.Module) -> None:
    """Train mode for what trains; eval mode kept for frozen submodules (Wen et al.'s pre-trained voice embedder),
    whose BatchNorm would otherwise drift to each batch's statistics while its weights stay fixed."""
    models.train()
    for module in models.children():
        if not any(p.requires_grad for p in module.parameters()):
            module.eval()


def _step(loss: GanLoss, opt: torch.optim.Optimizer, steps: GanSteps, batch: Batch, settings: LoopSettings,
          runtime: Runtime) -> dict[str, torch.Tensor]:
    with autocast(runtime.device, settings.amp):
        terms = loss(steps.models, batch)
    opt.zero_grad(set_to_none=True)
    terms["total"].backward()
    if runtime.distributed:
        _average_gradients(p for group in opt.param_groups for p in group["params"])
    opt.step()
    return {k: v.detach() for k, v in terms.items()}


def _average_gradients(params: Iterable[nn.Parameter]) -> None:
    world = dist.get_world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world)


def _broadcast_parameters(models: nn.Module) -> None:
    """Every rank starts from rank 0's weights (as DDP does at wrap time)."""
    for tensor in list(models.parameters()) + list(models.buffers()):
        dist.broadcast(tensor.data, src=0)


def _accumulate(progress: Progress, terms: dict[str, torch.Tensor], n: int) -> None:
    for key, value in terms.items():
        progress.sums[key] = progress.sums.get(key, 0.0) + float(value) * n
    progress.count += n


def _end_epoch(progress: Progress, steps: GanSteps, runtime: Runtime, log: LogFn,
               on_epoch: EpochHook | None) -> None:
    row = {f"loss_{k}": v / max(progress.count, 1) for k, v in sorted(progress.sums.items())}
    row = mean_across_ranks(row, runtime) | {"lr_d": steps.opt_d.param_groups[0]["lr"],
                                             "lr_g": steps.opt_g.param_groups[0]["lr"], "step": progress.step}
    progress.history.append(row)
    progress.sums, progress.count = {}, 0
    if runtime.is_main:
        epoch = len(progress.history) - 1
        log(epoch, row)
        if on_epoch is not None:
            was_training = steps.models.training
            steps.models.eval()
            on_epoch(epoch)
            if was_training:
                _train_mode(steps.models)
