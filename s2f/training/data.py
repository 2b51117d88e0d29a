"""The batches training reads: which samples at which step, and what each sample yields.

Why batches are a pure function of (seed, step): a run resumed from a checkpoint at step k reads exactly the batches
the uninterrupted run would have read from step k on, whatever the number of loader workers, with no loader state to
save. Each epoch is a seeded permutation; under DDP every rank takes its own interleaved share of it. A sample's
random audio window is seeded by (seed, epoch, index) for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

SampleKey = tuple[int, int]  # (epoch, sample index)


class StepBatches(Sampler[list[SampleKey]]):
    """Batches of (epoch, index) keys for optimizer steps `start, start+1, …, steps-1` of one rank, for `epochs`."""

    def __init__(self, num_samples: int, batch_size: int, epochs: int, seed: int, rank: int = 0, world_size: int = 1):
        self.per_rank = num_samples // world_size
        self.steps_per_epoch = self.per_rank // batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"{num_samples} samples cannot fill one batch of {batch_size} on each of "
                             f"{world_size} processes: lower the batch size")
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.steps = epochs * self.steps_per_epoch
        self.rank, self.world_size = rank, world_size
        self.start = 0

    def epoch_order(self, epoch: int) -> np.ndarray:
        """This rank's samples of `epoch`, in order, cut to whole batches: (steps_per_epoch, batch_size)."""
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
        mine = perm[self.rank::self.world_size][: self.steps_per_epoch * self.batch_size]
        return mine.reshape(self.steps_per_epoch, self.batch_size)

    def __iter__(self) -> Iterator[list[SampleKey]]:
        epoch, order = -1, None
        for step in range(self.start, self.steps):
            if step // self.steps_per_epoch != epoch:
                epoch = step // self.steps_per_epoch
                order = self.epoch_order(epoch)
            yield [(epoch, int(i)) for i in order[step % self.steps_per_epoch]]

    def __len__(self) -> int:
        return max(self.steps - self.start, 0)


class AudioWindows(Dataset):
    """(epoch, i) → (a random `window`-sample slice of clip i as float in [-1, 1], i[, row i of `targets`]).

    `audio` is an (N, L) int16 array or a `s2f.dataset.ShardColumn` (rows read from the shards on demand, in the
    loader's workers), and so is `targets` (the face features the clip's prediction is scored against), so memory
    does not grow with the corpus. The clips stay int16 until a sample is made.
    """

    def __init__(self, audio, window: int, seed: int, targets=None):
        self.audio, self.window, self.seed, self.targets = audio, min(window, audio.shape[1]), seed, targets

    def __len__(self) -> int:
        return len(self.audio)

    def __getitem__(self, key: SampleKey) -> tuple:
        epoch, i = key
        slack = self.audio.shape[1] - self.window
        start = int(np.random.default_rng([self.seed, epoch, i]).integers(0, slack + 1)) if slack else 0
        clip = torch.from_numpy(self.audio[i, start:start + self.window].astype(np.float32) / 32768.0)
        if self.targets is None:
            return clip, i
        return clip, i, torch.from_numpy(np.asarray(self.targets[i], np.float32))


class Rows(Dataset):
    """(epoch, i) → row i of each tensor (the decoder's aligned faces, landmarks and features live in memory)."""

    def __init__(self, *tensors: torch.Tensor):
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, ...]:
        return tuple(t[key[1]] for t in self.tensors)


def make_loader(dataset: Dataset, batches: StepBatches, workers: int, pin_memory: bool,
                generator: torch.Generator | None = None) -> DataLoader:
    """A DataLoader over the step batches; workers > 0 prepare batches in parallel with the model's step.

    `generator`: starting an iteration draws a seed from it, by default from the global RNG. A loss that draws from
    the global RNG itself (the GANs' crops and noise) passes its own, or a resumed run, which starts a new iteration
    after restoring the global RNG, would be one draw off the uninterrupted run.
    """
    return DataLoader(dataset, batch_sampler=batches, num_workers=workers, pin_memory=pin_memory,
                      persistent_workers=False, prefetch_factor=4 if workers else None, generator=generator)
