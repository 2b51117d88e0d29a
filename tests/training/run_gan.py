"""A tiny GAN training run as its own process, for the resume (SIGKILL) and DDP (torchrun) tests.

Usage: python -m tests.training.run_gan --family F --out DIR [--checkpoint FILE] [--kill-after-epoch K]
Writes DIR/weights-rank<R>.pt (every rank: the audio → face model) and DIR/curve.json (rank 0).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path

import numpy as np
import torch

from s2f.config import TrainGanParams
from s2f.training.distributed import setup_runtime, teardown_runtime
from s2f.training.gan import train_gan

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--family", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--kill-after-epoch", type=int)
    args = parser.parse_args()
    runtime = setup_runtime()
    rows = []

    def log(epoch: int, row: dict) -> None:
        rows.append(row)
        if args.kill_after_epoch is not None and epoch == args.kill_after_epoch:
            os.kill(os.getpid(), signal.SIGKILL)  # a real kill: no cleanup, no atexit, mid-run

    model = train_gan(args.family, *synthetic_data(), TrainGanParams.model_validate(PARAMS), runtime, log,
                      args.checkpoint)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out / f"weights-rank{runtime.rank}.pt")
    if runtime.is_main:
        (args.out / "curve.json").write_text(json.dumps(rows))
    teardown_runtime(runtime)


if __name__ == "__main__":
    main()
