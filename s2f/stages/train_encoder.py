"""train_encoder: fit the Speech2Face voice encoder (voice → face feature) against the frozen face decoder.

Reads the `train_encoder` section. Writes the model (weights + JSON config), a metrics JSON and a per-epoch curve of
every loss term; logs params, curves and model files to MLflow.
"""

from __future__ import annotations

from pathlib import Path

from s2f.config import TrainEncoderParams
from s2f.dataset import load_split
from s2f.io.checkpoints import load_model, save_model
from s2f.io.tracking import EpochCurve, log_model_files, stage_run
from s2f.stages.common import load_params, stage_parser, write_curve, write_json
from s2f.training import train_encoder


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--pre", type=Path, default=Path("data/preprocessed"))
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--decoder", type=Path, default=Path("models/face_decoder.pt"))
    parser.add_argument("--model", type=Path, default=Path("models/voice_encoder.pt"))
    parser.add_argument("--metrics", type=Path, default=Path("reports/train_encoder.json"))
    parser.add_argument("--curve", type=Path, default=Path("reports/plots/train_encoder.csv"))
    args = parser.parse_args(argv)
    params: TrainEncoderParams = load_params("train_encoder", args.params)
    data = load_split(args.pre, args.features, "train", audio=True)
    decoder = load_model(args.decoder)
    curve = EpochCurve()
    with stage_run("train_encoder", params.model_dump()):
        model = train_encoder(data.audio, data.embedding, decoder, params, curve)
        save_model(model, args.model, {"trained_on_samples": len(data.audio)})
        log_model_files(args.model)
    write_curve(args.curve, curve.rows)
    write_json(args.metrics, curve.last | {"samples": len(data.audio)})
    print(f"train_encoder: final loss {curve.last['loss_total']:.4f} on {len(data.audio)} samples")


if __name__ == "__main__":
    main()
