"""What a perfect reader of the demo voices' traits would score: the ceiling of held-out retrieval on the demo.

Usage (after `make demo`): .venv/bin/python bench/trait_ceiling.py

Fits least squares from the TRUE shared traits (size, shape, tone: `data/raw/manifest.csv` holds them for analysis;
no stage reads them) of the training speakers to their clips' face features, linear and quadratic, predicts every
test clip from its speaker's traits, and scores it as `evaluate` does (held-out 6 s R@1 and R@10 over galleries of
the test speakers). Then the same with Gaussian noise added to the test traits: how exactly an encoder must read
the traits from the voice to reach a given R@1. Prints one table.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2f.dataset import load_split  # noqa: E402
from s2f.evaluation import retrieval_metrics  # noqa: E402

SHARED = ["trait_size", "trait_shape", "trait_tone"]   # what the voice carries; trait_face_only it does not
NOISE = (0.0, 0.1, 0.2, 0.25, 0.3, 0.5)                # standard deviations of the traits (each is N(0, 1))
REPEATS = 5


def design(traits: np.ndarray, quadratic: bool) -> np.ndarray:
    columns = [np.ones((len(traits), 1)), traits]
    if quadratic:
        k = traits.shape[1]
        columns.append(np.stack([traits[:, i] * traits[:, j] for i in range(k) for j in range(i, k)], axis=1))
    return np.hstack(columns)


def main() -> None:
    traits = pd.read_csv(ROOT / "data/raw/manifest.csv").groupby("speaker")[SHARED].first()
    train = load_split(ROOT / "data/preprocessed", ROOT / "data/features", "train", audio=False).in_memory()
    test = load_split(ROOT / "data/preprocessed", ROOT / "data/features", "test", audio=False).in_memory()
    rng = np.random.default_rng(0)
    print(f"fit on {len(set(train.speakers))} training speakers, scored on {len(set(test.speakers))} held-out ones")
    print("| fit | trait noise (sd) | R@1 | R@10 |\n| --- | --- | --- | --- |")
    for quadratic in (False, True):
        x = design(traits.loc[train.speakers].to_numpy(), quadratic)
        weights = np.linalg.lstsq(x, np.asarray(train.embedding, np.float64), rcond=None)[0]
        for sigma in NOISE:
            scores = []
            for _ in range(REPEATS if sigma else 1):
                true = traits.loc[test.speakers].to_numpy()
                read = true + sigma * rng.standard_normal(true.shape)
                scores.append(retrieval_metrics(design(read, quadratic) @ weights, test, [1, 10]))
            r1, r10 = (np.mean([s[f"recall_at_{k}"] for s in scores]) for k in (1, 10))
            print(f"| {'quadratic' if quadratic else 'linear'} | {sigma:g} | {r1:.3f} | {r10:.3f} |")


if __name__ == "__main__":
    main()
