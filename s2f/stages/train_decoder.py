"""train_decoder: fit the face decoder (face feature → face image) on the training speakers' crops.

Reads the `train_decoder` section. Writes the model (weights + JSON config), a metrics JSON and a per-epoch curve;
logs params, curve and model files to MLflow.
"""

from __future__ import annotations

from pathlib import Path

from s2f.config import TrainDecoderParams, load_section
from s2f.dataset import load_split
from s2f.io.checkpoints import save_model
from s2f.io.tracking import stage_run
from s2f.stages.common import stage_parser, write_curve, write_json
from s2f.training import train_decoder


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--pre", type=Path, default=Path("data/preprocessed"))
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--model", type=Path, default=Path("models/face_decoder.pt"))
    parser.add_argument("--metrics", type=Path, default=Path("reports/train_decoder.json"))
    parser.add_argument("--curve", type=Path, default=Path("reports/plots/train_decoder.csv"))
    args = parser.parse_args(argv)
    params: TrainDecoderParams = load_section("train_decoder", args.params)
    data = load_split(args.pre, args.features, "train", audio=False, faces=True)
    import mlflow

    curve: list[dict] = []
    with stage_run("train_decoder", params.model_dump()):
        def log(epoch: int, metrics: dict[str, float]) -> None:
            curve.append({"epoch": epoch, **metrics})
            mlflow.log_metrics(metrics, step=epoch)

        model = train_decoder(data.embedding, data.face, params, log)
        save_model(model, args.model, {"trained_on_samples": len(data.embedding)})
        mlflow.log_artifact(str(args.model), "model")
        mlflow.log_artifact(str(args.model.with_suffix(".json")), "model")
    write_curve(args.curve, curve)
    write_json(args.metrics, {"train_l1": curve[-1]["l1"], "samples": len(data.embedding)})
    print(f"train_decoder: final train L1 {curve[-1]['l1']:.4f} on {len(data.embedding)} samples")


if __name__ == "__main__":
    main()
