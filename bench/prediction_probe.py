"""Score two ways of combining voice-encoder predictions on the demo's held-out speakers, without training anything.

Usage (after `make demo`; TAGs are bench/results/TAG.npy files written by bench/encoder_probe.py):
    .venv/bin/python bench/prediction_probe.py ensemble TAG TAG [TAG ...]
    .venv/bin/python bench/prediction_probe.py windows [MODEL]

- `ensemble`: held-out 6 s R@1 and R@10 of each encoder's predictions, then of the mean of every combination of
  them. Averaging removes what the encoders get wrong independently (their seeds, their decoders), not what they
  share, so it tells variance from bias in the retrieval errors.
- `windows`: a saved encoder (default models/voice_encoder.pt) scored on the whole 6 s clip, then on the mean of its
  predictions over sliding windows as long as the training crops. Training sees 1.5 s crops and evaluation 6 s, so
  this asks whether that mismatch costs retrieval.

How the rows of docs/models.md on ensembles and window averaging were measured; writes nothing.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2f.audio import SAMPLE_RATE  # noqa: E402
from s2f.dataset import load_split  # noqa: E402
from s2f.evaluation import retrieval_metrics  # noqa: E402
from s2f.io.checkpoints import load_model  # noqa: E402
from s2f.training.encoder import predict_features  # noqa: E402

WINDOWS = [(1.5, 1.5), (1.5, 0.75), (1.5, 0.5), (2.0, 1.0), (3.0, 1.5)]  # (length, hop) in seconds


def scored(predicted: np.ndarray, test) -> str:
    scores = retrieval_metrics(predicted, test, [1, 10])
    return f"R@1 {scores['recall_at_1']:.3f}  R@10 {scores['recall_at_10']:.3f}"


def ensemble(tags: list[str], test) -> None:
    predicted = {tag: np.load(ROOT / "bench/results" / f"{tag}.npy") for tag in tags}
    for size in range(1, len(tags) + 1):
        for group in itertools.combinations(tags, size):
            print(f"{' + '.join(group)}: {scored(np.mean([predicted[t] for t in group], axis=0), test)}")


def windows(model: Path, test) -> None:
    encoder = load_model(model).eval()
    print(f"whole 6 s: {scored(predict_features(encoder, test.audio), test)}")
    for length, hop in WINDOWS:
        size, step = int(length * SAMPLE_RATE), int(hop * SAMPLE_RATE)
        starts = range(0, test.audio.shape[1] - size + 1, step)
        mean = np.mean([predict_features(encoder, np.ascontiguousarray(test.audio[:, s:s + size])) for s in starts],
                       axis=0)
        print(f"mean over {len(starts)} windows of {length} s, hop {hop} s: {scored(mean, test)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="probe", required=True)
    sub.add_parser("ensemble", help="mean of saved predictions").add_argument("tags", nargs="+")
    sub.add_parser("windows", help="mean over training-length windows").add_argument(
        "model", nargs="?", type=Path, default=ROOT / "models/voice_encoder.pt")
    args = parser.parse_args()
    test = load_split(ROOT / "data/preprocessed", ROOT / "data/features", "test").in_memory()
    if args.probe == "ensemble":
        ensemble(args.tags, test)
    else:
        windows(args.model, test)


if __name__ == "__main__":
    main()
