"""The training loop of the voice → face GANs: alternating D and G steps, both optimisers checkpointed, exact resume.

It keeps the contract of `s2f.training.loop.fit`, and shares its `Run` (resume, per-epoch rows, checkpoints: batches a
pure function of (seed, step), every RNG state in the checkpoint, a fingerprint so a checkpoint is only resumed by
the run that wrote it) and bf16 autocast on CUDA; it adds what a GAN needs: two optimisers over two parameter sets,
and two losses per step (first D's, then G's).

Why gradients are averaged by hand under `torchrun` rather than by wrapping modules in DistributedDataParallel: a GAN
step runs the generator in D's step without training it and the discriminator in G's step without training it;
DDP's bucketed reduction expects each forward of a wrapped module to be followed by a backward through all of it,
and fails (or needs find_unused_parameters and still mis-syncs) when it is not. One all-reduce of the stepped
parameters' gradients after each backward is what DDP computes, without that coupling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from s2f.training.data import StepBatches
from s2f.training.distributed import Runtime
from s2f.training.loop import LogFn, LoopSettings, Run, autocast

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


def fit_adversarial(steps: GanSteps, dataset, batches: StepBatches, settings: LoopSettings, runtime: Runtime,
                    log: LogFn, on_epoch: EpochHook | None = None) -> list[dict[str, float]]:
    """Train the family's networks in place, one D step then one G step per batch; returns the per-epoch curve.

    Logged rows hold every term of both losses (`loss_d_<term>`, `loss_g_<term>`). `on_epoch(epoch)` runs on rank 0
    after each epoch's row is logged (the sample grid), also not for epochs replayed from a checkpoint.
    """
    steps.models.to(runtime.device)  # before loading: Adam's load_state_dict moves its state to the weights' device
    run = Run({"models": steps.models, "opt_d": steps.opt_d, "opt_g": steps.opt_g}, batches, settings, runtime, log)
    if runtime.distributed:
        _broadcast_parameters(steps.models)
    _train_mode(steps.models)
    for batch in run.loader(dataset):
        batch = {k: v.to(runtime.device, non_blocking=True) for k, v in batch.items()}
        terms = {f"d_{k}": v for k, v in _step(steps.d_loss, steps.opt_d, steps, batch, settings, runtime).items()}
        terms |= {f"g_{k}": v for k, v in _step(steps.g_loss, steps.opt_g, steps, batch, settings, runtime).items()}
        if run.count_step(terms, len(batch["face"])):
            epoch = run.end_epoch({"lr_d": steps.opt_d.param_groups[0]["lr"],
                                   "lr_g": steps.opt_g.param_groups[0]["lr"]})
            if runtime.is_main and on_epoch is not None:
                _sample(steps.models, on_epoch, epoch)  # before the checkpoint: it may draw from the global RNG
        run.checkpoint_if_due()
    steps.models.eval()
    return run.progress.history


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


def _sample(models: nn.ModuleDict, on_epoch: EpochHook, epoch: int) -> None:
    """`on_epoch(epoch)` with the networks in eval mode, then back in train mode."""
    was_training = models.training
    models.eval()
    on_epoch(epoch)
    if was_training:
        _train_mode(models)
