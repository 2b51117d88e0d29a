"""How much of a face a trained GAN's voice embedding carries, apart from what its generator draws from it.

Usage (after `make demo`, or on a model bench/gan_probe.py saved):
    .venv/bin/python bench/gan_embedding_probe.py models/gan/wen2019.pt [bench/results/TAG.pt ...]

For each model: the voice network's embedding of every clip (as the generator receives it at inference), a ridge
regression from the training clips' embeddings to their true face features, and the held-out speakers' predicted
features scored as `evaluate` scores Speech2Face's (6 s, galleries of the test speakers), for a few ridge
strengths. If this readout retrieves well and the generated faces do not, the generator is what holds the family
back; if the readout is weak too, no generator could do better from that embedding. How the diagnosis in
docs/gan_families.md was measured; writes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2f.audio import int16_to_float  # noqa: E402
from s2f.dataset import load_split  # noqa: E402
from s2f.evaluation import retrieval_metrics  # noqa: E402
from s2f.io.checkpoints import load_model  # noqa: E402

STRENGTHS = (0.1, 1.0, 10.0, 100.0)


@torch.no_grad()
def embeddings(model: torch.nn.Module, audio: np.ndarray, batch: int = 32) -> np.ndarray:
    """(N, L) int16 clips → (N, E): the generator's condition, as `VoiceToFace.embed` gives it at inference."""
    return torch.cat([model.embed(int16_to_float(torch.from_numpy(np.asarray(audio[i:i + batch]))))
                      for i in range(0, len(audio), batch)]).numpy()


def ridge_readout(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, strength: float) -> np.ndarray:
    """Ridge on standardised embeddings (intercept unpenalised by centring) → the test rows' predicted features."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mean) / std, (test_x - mean) / std
    y_mean = train_y.mean(0)
    weights = np.linalg.solve(a.T @ a + strength * np.eye(a.shape[1]), a.T @ (train_y - y_mean))
    return b @ weights + y_mean


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    pre, feats = ROOT / "data/preprocessed", ROOT / "data/features"
    train, test = (load_split(pre, feats, split).in_memory() for split in ("train", "test"))
    target = np.asarray(train.embedding, np.float64)
    print("| model | ridge strength | held-out 6 s R@1 | R@10 |\n| --- | --- | --- | --- |")
    for path in map(Path, sys.argv[1:]):
        model = load_model(path).eval()
        train_x, test_x = embeddings(model, train.audio), embeddings(model, test.audio)
        for strength in STRENGTHS:
            scores = retrieval_metrics(ridge_readout(train_x, target, test_x, strength), test, [1, 10])
            print(f"| {path.name} | {strength:g} | {scores['recall_at_1']:.3f} | {scores['recall_at_10']:.3f} |")


if __name__ == "__main__":
    main()
