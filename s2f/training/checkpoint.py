"""A training run's resumable state, and the one checkpoint file that carries it.

Both loops (`s2f.training.loop.fit`, `s2f.training.adversarial.fit_adversarial`) save the same thing: the run's
`Progress` (step, the partial sums of the epoch being logged, the curve so far), the `state_dict` of each named
stateful object the next step depends on (models, optimisers, schedulers, hook state), every global RNG (Python's
`random`, numpy's, torch's CPU and CUDA generators) and a fingerprint of the run's settings, data and code, so that
a checkpoint is only resumed by the run that wrote it. The loader's generator is not in it: it is reseeded from the
batches' seed at every start (see `s2f.training.loop.Run.loader`).

Why apart from `s2f.io.checkpoints`: that module writes the models the pipeline ships (weights plus a JSON config,
loaded by serving); this file is the trainer's scratch state, read back only by the run that wrote it.
Loaded with `torch.load(..., weights_only=True)`: tensors, numbers, strings and containers of them, no pickled code.
Written to a temporary file and renamed, so a kill during the write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import dataclasses
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class Progress:
    step: int = 0
    sums: dict[str, float] = field(default_factory=dict)   # the epoch's loss terms so far, each × batch size
    count: int = 0                                          # the samples in those sums
    history: list[dict[str, float]] = field(default_factory=list)

    def add(self, terms: dict[str, torch.Tensor], n: int) -> None:
        """Count one optimizer step whose batch of `n` samples gave the loss `terms`."""
        self.step += 1
        for key, value in terms.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value.detach()) * n
        self.count += n

    def close_epoch(self) -> dict[str, float]:
        """The epoch's mean of each term (`loss_<term>`, on this rank); starts the next epoch's sums."""
        row = {f"loss_{k}": v / max(self.count, 1) for k, v in sorted(self.sums.items())}
        self.sums, self.count = {}, 0
        return row


RESERVED = ("fingerprint", "progress", "rng")  # the checkpoint's own keys, beside one per stateful object


def rng_states() -> dict[str, Any]:
    python = random.getstate()
    numpy = np.random.get_state(legacy=False)  # a dict; its uint32 key as an int64 tensor (weights_only loads it)
    numpy["state"]["key"] = torch.from_numpy(numpy["state"]["key"].astype(np.int64))
    return {"python": python, "numpy": numpy, "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_states(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    numpy = state["numpy"]
    np.random.set_state({**numpy, "state": {**numpy["state"], "key": numpy["state"]["key"].numpy().astype(np.uint32)}})
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, fingerprint: str, progress: Progress, objects: dict[str, Stateful]) -> None:
    """Write the progress, each object's state under its name and the RNGs to `path`, atomically."""
    if clash := set(objects) & set(RESERVED):
        raise ValueError(f"stateful objects named {sorted(clash)}: names the checkpoint uses itself")
    state = {"fingerprint": fingerprint, "progress": dataclasses.asdict(progress), "rng": rng_states(),
             **{name: obj.state_dict() for name, obj in objects.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path | None, expected: str, objects: dict[str, Stateful]) -> Progress | None:
    """Restore a checkpoint with the `expected` fingerprint into `objects` and the RNGs, and return its progress;
    None when there is none or it was written by another run (other settings, data or code), which is said."""
    if path is None or not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("fingerprint") != expected:
        print(f"checkpoint {path} was written by other settings or data: starting afresh")
        return None
    for name, obj in objects.items():
        obj.load_state_dict(state[name])
    set_rng_states(state["rng"])
    p = state["progress"]
    return Progress(p["step"], dict(p["sums"]), p["count"], list(p["history"]))
