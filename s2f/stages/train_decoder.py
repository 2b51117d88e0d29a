"""train_decoder: fit the face decoder (face feature → face image) on the training speakers' crops.

Reads the `train_decoder` section. Writes the model (weights + JSON config), a metrics JSON and a per-epoch curve;
logs params, curve and model files to MLflow.
"""

from __future__ import annotations

from pathlib import Path

from s2f.config import TrainDecoderParams
from s2f.dataset import load_split
from s2f.io.checkpoints import save_model
from s2f.io.tracking import EpochCurve, log_model_files, stage_run
from s2f.stages.common import load_params, stage_parser, write_curve, write_json
from s2f.training import train_decoder


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--pre", type=Path, default=Path("data/preprocessed"))
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--model", type=Path, default=Path("models/face_decoder.pt"))
    parser.add_argument("--metrics", type=Path, default=Path("reports/train_decoder.json"))
    parser.add_argument("--curve", type=Path, default=Path("reports/plots/train_decoder.csv"))
    args = parser.parse_args(argv)
    params: TrainDecoderParams = load_params("train_decoder", args.params)
    data = load_split(args.pre, args.features, "train", audio=False, faces=True)
    curve = EpochCurve()
    with stage_run("train_decoder", params.model_dump()):
        model = train_decoder(data.embedding, data.face, params, curve)
        save_model(model, args.model, {"trained_on_samples": len(data.embedding)})
        log_model_files(args.model)
    write_curve(args.curve, curve.rows)
    write_json(args.metrics, {"train_l1": curve.last["l1"], "samples": len(data.embedding)})
    print(f"train_decoder: final train L1 {curve.last['l1']:.4f} on {len(data.embedding)} samples")


if __name__ == "__main__":
    main()
