"""evaluate: voice → face on held-out speakers: retrieval R@K with chance, feature distances, a face grid.

Reads the `evaluate` section. Writes reports/metrics.json (a DVC metric) and reports/face_grid.png (a DVC plot);
logs both to MLflow.
"""

from __future__ import annotations

from pathlib import Path

from s2f.config import EvaluateParams
from s2f.dataset import load_split
from s2f.evaluation import evaluate, face_grid
from s2f.io.checkpoints import load_model
from s2f.io.tracking import stage_run
from s2f.stages.common import load_params, stage_parser, write_json
from s2f.training import device, predict_features


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--pre", type=Path, default=Path("data/preprocessed"))
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--encoder", type=Path, default=Path("models/voice_encoder.pt"))
    parser.add_argument("--decoder", type=Path, default=Path("models/face_decoder.pt"))
    parser.add_argument("--metrics", type=Path, default=Path("reports/metrics.json"))
    parser.add_argument("--grid", type=Path, default=Path("reports/face_grid.png"))
    args = parser.parse_args(argv)
    params: EvaluateParams = load_params("evaluate", args.params)
    data = load_split(args.pre, args.features, "test", audio=True, faces=True)
    dev = device()
    encoder, decoder = load_model(args.encoder, dev), load_model(args.decoder, dev)
    predicted = predict_features(encoder, data.audio)
    metrics = evaluate(predicted, data, params.ks)
    grid = face_grid(data, predicted, decoder, params.grid_speakers)
    args.grid.parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.grid)
    write_json(args.metrics, metrics)
    import mlflow

    with stage_run("evaluate", params.model_dump()):
        mlflow.log_metrics(metrics)
        mlflow.log_artifact(str(args.grid))
        mlflow.log_artifact(str(args.metrics))
    shown = {k: round(v, 3) for k, v in metrics.items() if k.startswith(("recall", "chance", "gallery"))}
    print(f"evaluate: {shown}")


if __name__ == "__main__":
    main()
