"""A tiny voice-encoder training run as its own process, for the resume (SIGKILL) and DDP (torchrun) tests.

Usage: python -m tests.training.run_training --out DIR [--checkpoint FILE] [--kill-after-epoch K]
Writes DIR/weights-rank<R>.pt (every rank), DIR/curve.json and DIR/summary.json (rank 0); see `tests.training.runs`.
Two of the six speakers validate every epoch and choose the epoch; then the refit trains on all six through it, its
epochs logged from REFIT_FIRST_EPOCH on. The loss weights are calibrated at step 3, so a kill after epoch 1 (step 8,
last checkpoint at step 6) resumes past both.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn

from s2f.config import TrainEncoderParams
from s2f.training.distributed import Runtime
from s2f.training.encoder import train_encoder
from s2f.training.loop import LogFn
from tests.training import runs

PARAMS = {
    "model": {"preset": "demo", "blocks": [{"channels": 4, "time_pool": True, "freq_stride": 4},
                                           {"channels": 8, "time_pool": True, "freq_stride": 4}],
              "last_channels": 8, "hidden": 16},
    "crop_seconds": 0.75, "epochs": 4, "batch_size": 4, "lr": 0.003,
    "loss": {"distill": 200.0, "weights": "calibrate", "calibrate_at": 3, "calibrate_within": 1.0},
    "validation": {"fraction": 0.34, "keep": "best_val_recall_at_1"},
    "loop": {"checkpoint_every": 2, "amp": True}, "seed": 3,
}


REFIT_FIRST_EPOCH = 100   # the refit's epochs reach the log (and --kill-after-epoch) numbered from here


def synthetic_data(n: int = 24, seconds: float = 1.0, dim: int = 6, speakers: int = 6):
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((n, int(seconds * 16000))) * 3000).astype(np.int16)
    embedding = rng.standard_normal((n, dim)).astype(np.float32)
    return audio, embedding, np.arange(n) % speakers


def train(args: argparse.Namespace, runtime: Runtime, log: LogFn) -> tuple[nn.Module, dict | None]:
    audio, embedding, speakers = synthetic_data()
    torch.manual_seed(1)
    f_dec, head = torch.nn.Linear(6, 10), torch.nn.Linear(6, 6)
    trained = train_encoder(audio, embedding, f_dec, head, TrainEncoderParams.model_validate(PARAMS), runtime, log,
                            args.checkpoint, speakers=np.array([f"s{k}" for k in speakers]),
                            refit_log=lambda epochs: lambda epoch, row: log(REFIT_FIRST_EPOCH + epoch, row))
    return trained.model, trained.summary()


if __name__ == "__main__":
    runs.main(train)
