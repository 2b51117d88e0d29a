"""Train the voice encoder on the demo's training speakers with some params overridden, and score it on the test ones.

Usage (after `make demo`, which leaves data/preprocessed, data/features and models/face_decoder.pt):
    .venv/bin/python bench/encoder_probe.py '{"validation": {"refit": false}}' TAG [DECODER]

DECODER: another trained face decoder (default models/face_decoder.pt), whose shared layer the loss goes through.

Prints one line: training seconds, held-out 6 s R@1 and R@10 (galleries as in `evaluate`), the epoch validation
kept and its validation R@1, and whether the model saved was refit. How the encoder defaults in docs/models.md were
chosen; nothing here is written anywhere but bench/results/TAG.npy (the test clips' predicted features).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2f.config import TrainEncoderParams, load_section  # noqa: E402
from s2f.dataset import load_split  # noqa: E402
from s2f.evaluation import retrieval_metrics  # noqa: E402
from s2f.io.checkpoints import load_model  # noqa: E402
from s2f.training.distributed import setup_runtime  # noqa: E402
from s2f.training.encoder import predict_features, train_encoder  # noqa: E402


def merged(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merged(base.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def main() -> None:
    overrides, tag = json.loads(sys.argv[1]), sys.argv[2]
    base = load_section("train_encoder", ROOT / "params.yaml").model_dump()
    params = TrainEncoderParams.model_validate(merged(base, overrides))
    pre, feats = ROOT / "data/preprocessed", ROOT / "data/features"
    start = time.time()
    train = load_split(pre, feats, "train").in_memory()
    test = load_split(pre, feats, "test").in_memory()
    decoder = load_model(Path(sys.argv[3]) if len(sys.argv) > 3 else ROOT / "models/face_decoder.pt")
    trained = train_encoder(train.audio, train.embedding, decoder.first, None, params, setup_runtime(),
                            lambda epoch, row: None, speakers=train.speakers)
    seconds = time.time() - start
    predicted = predict_features(trained.model, test.audio)
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / f"{tag}.npy", predicted)
    scores = retrieval_metrics(predicted, test, [1, 10])
    kept = trained.kept_row.get("val_recall_at_1")
    print(f"{tag}: {seconds:.0f} s, held-out 6 s R@1 {scores['recall_at_1']:.3f} R@10 {scores['recall_at_10']:.3f} "
          f"(chance {scores['chance_at_1']:.3f} / {scores['chance_at_10']:.3f}); kept epoch {trained.kept_epoch}"
          + (f", validation R@1 {kept:.3f}" if kept is not None else "")
          + (f"; refit on {trained.train_samples} clips for {trained.refit_epochs} epochs" if trained.refit_epochs
             else f"; trained on {trained.train_samples} clips"), flush=True)


if __name__ == "__main__":
    main()
