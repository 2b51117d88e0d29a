"""How much of a face a trained GAN's voice embedding carries, apart from what its generator draws from it.

Usage (after `make demo`, or on a model bench/gan_probe.py saved):
    .venv/bin/python bench/gan_embedding_probe.py models/gan/wen2019.pt [bench/results/TAG.pt ...]

For each model: the voice network's embedding of every clip (as the generator receives it at inference), a ridge
regression from the training clips' embeddings to their true face features (`s2f.baselines.fit_ridge`, its strength
chosen on validation speakers as for the ridge baseline), and the held-out speakers' predicted features scored as
`evaluate` scores Speech2Face's (6 s, galleries of the test speakers). If this readout retrieves well and the
generated faces do not, the generator is what holds the family back; if the readout is weak too, no generator could
do better from that embedding. How the diagnosis in docs/gan_families.md was measured; writes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2f.audio import int16_to_float  # noqa: E402
from s2f.baselines import fit_ridge  # noqa: E402
from s2f.dataset import load_split  # noqa: E402
from s2f.evaluation import retrieval_metrics  # noqa: E402
from s2f.io.checkpoints import load_model  # noqa: E402


@torch.no_grad()
def embeddings(model: torch.nn.Module, audio: np.ndarray, batch: int = 32) -> np.ndarray:
    """(N, L) int16 clips → (N, E): the generator's condition, as `VoiceToFace.embed` gives it at inference."""
    return torch.cat([model.embed(int16_to_float(torch.from_numpy(np.asarray(audio[i:i + batch]))))
                      for i in range(0, len(audio), batch)]).numpy()


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    pre, feats = ROOT / "data/preprocessed", ROOT / "data/features"
    train, test = (load_split(pre, feats, split).in_memory() for split in ("train", "test"))
    target = np.asarray(train.embedding, np.float64)
    print("| model | ridge strength (chosen on validation speakers) | held-out 6 s R@1 | R@10 |")
    print("| --- | --- | --- | --- |")
    for path in map(Path, sys.argv[1:]):
        model = load_model(path).eval()
        readout = fit_ridge(embeddings(model, train.audio), target, train.speakers)
        scores = retrieval_metrics(readout.predict_stats(embeddings(model, test.audio)), test, [1, 10])
        print(f"| {path.name} | {readout.alpha:g} | {scores['recall_at_1']:.3f} | {scores['recall_at_10']:.3f} |")


if __name__ == "__main__":
    main()
