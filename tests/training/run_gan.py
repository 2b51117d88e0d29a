"""A tiny GAN training run as its own process, for the resume (SIGKILL) and DDP (torchrun) tests.

Usage: python -m tests.training.run_gan --family F --out DIR [--checkpoint FILE] [--kill-after-epoch K]
Writes DIR/weights-rank<R>.pt (every rank: the audio → face model) and DIR/curve.json (rank 0); see
`tests.training.runs`.
"""

from __future__ import annotations

import argparse

import numpy as np
from torch import nn

from s2f.config import TrainGanParams
from s2f.training.distributed import Runtime
from s2f.training.gan import train_gan
from s2f.training.loop import LogFn
from tests.training import runs

PARAMS = {
    "wen2019": {"width": 0.02, "pretrain_epochs": 2, "epochs": 4, "batch_size": 4},
    "wav2pix": {"width": 0.02, "epochs": 4, "batch_size": 4},
    "loop": {"checkpoint_every": 2, "amp": True}, "seed": 3,
}


def synthetic_data(n: int = 16, seconds: float = 3.2, speakers: int = 4):
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((n, int(seconds * 16000))) * 3000).astype(np.int16)
    faces = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    return audio, faces, np.arange(n) % speakers


def train(args: argparse.Namespace, runtime: Runtime, log: LogFn) -> tuple[nn.Module, dict | None]:
    model = train_gan(args.family, *synthetic_data(), TrainGanParams.model_validate(PARAMS), runtime, log,
                      args.checkpoint)
    return model, None


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--family", required=True)
    runs.main(train, parser)
