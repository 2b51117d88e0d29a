"""train_decoder: fit the face decoder (Cole et al.: landmarks + texture + warp) on the training speakers' faces.

Reads the `train_decoder` section. First fits a small feature proxy (crop → face feature, frozen; the
differentiable judge of the identity term), then the decoder on faces aligned to the mean shape. Writes the model
(weights + JSON config), a metrics JSON and a per-epoch curve of every loss term; logs them to MLflow (the outputs
are written even when the tracker goes away mid-run: see `s2f.io.tracking`). Resumes from its checkpoint when
killed. Under `torchrun` it trains with DDP (gloo on CPU, NCCL on CUDA).
"""

from __future__ import annotations

from pathlib import Path

from s2f.config import TrainDecoderParams
from s2f.dataset import load_split
from s2f.io.checkpoints import save_model
from s2f.io.tracking import EpochCurve, main_process_run
from s2f.stages.common import load_params, run_stage, stage_parser, write_curve, write_json
from s2f.training.decoder import decoder_targets, train_decoder, train_proxy
from s2f.training.distributed import setup_runtime, teardown_runtime


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--pre", type=Path, default=Path("data/preprocessed"),
                        help="preprocessed sample shards (the face crops)")
    parser.add_argument("--features", type=Path, default=Path("data/features"),
                        help="face-feature shards and the speaker split")
    parser.add_argument("--model", type=Path, default=Path("models/face_decoder.pt"),
                        help="the trained face decoder (weights; its JSON config is written beside it)")
    parser.add_argument("--metrics", type=Path, default=Path("reports/train_decoder.json"),
                        help="the last epoch's loss terms (a DVC metrics file)")
    parser.add_argument("--curve", type=Path, default=Path("reports/plots/train_decoder.csv"),
                        help="per-epoch loss terms as CSV, with a PNG of them beside it")
    parser.add_argument("--checkpoint", type=Path, default=Path("data/interim/checkpoints/train_decoder.pt"),
                        help="resumed from when it matches these params and data")
    args = parser.parse_args(argv)
    params: TrainDecoderParams = load_params("train_decoder", args.params)
    runtime = setup_runtime(params.loop.cpu_threads)
    # the run opens first: a tracker that does not answer ends the stage before the data is loaded
    with main_process_run("train_decoder", params.model_dump(), runtime.is_main) as run:
        data = load_split(args.pre, args.features, "train", audio=False, faces=True, landmarks=True).for_training(
            params.loop.in_memory_mb)
        if run is not None:
            run.log_dataset(data.manifest, "train", "data/features")
        targets = decoder_targets(data.embedding, data.face, data.landmarks, params.image_size)
        curve = EpochCurve(run, label="train_decoder", epochs=params.epochs)
        proxy_curve = EpochCurve(run, prefix="proxy_", label="train_decoder: identity proxy",
                                 epochs=params.proxy.epochs)
        proxy = train_proxy(targets, params, runtime, proxy_curve) if params.loss.identity > 0 else None
        model = train_decoder(targets, proxy, params, runtime, curve, args.checkpoint)
        if run is not None:  # the main process
            meta = {"trained_on_samples": len(data.embedding)}
            save_model(model, args.model, meta)
            scores, step, stamp = curve.scores()
            run.log_model(args.model, "face_decoder", scores, step=step, stamp=stamp, params=meta)
            run.log_artifact(write_curve(args.curve, curve.rows, "train_decoder: loss terms per epoch"), "plots")
    teardown_runtime(runtime)
    if not runtime.is_main:
        return
    last = curve.last
    write_json(args.metrics, {"train_" + k.removeprefix("loss_"): v for k, v in last.items() if k.startswith("loss_")}
               | {"samples": len(data.embedding), "proxy_cosine": 1 - proxy_curve.last["loss_total"] if proxy else None})
    print(f"train_decoder: final loss {last['loss_total']:.4f} on {len(data.embedding)} samples")


if __name__ == "__main__":
    run_stage(main)
