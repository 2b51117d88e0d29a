"""train_encoder: fit the Speech2Face voice encoder (voice → face feature) against the frozen face decoder.

Reads the `train_encoder` section (the architecture is a preset, `s2f model-summary --preset NAME`, plus
overrides). The loss is the paper's: decoder-feature L1, normalized L2 and distillation through the identity head
the features stage wrote, weighted by the paper's rule (calibrated gradient norms) or fixed (`loss.weights`; the
backend is read from the features manifest). A share of the training speakers validates every epoch and picks the
epoch kept (`validation`); the model saved is then refit on every training speaker through that epoch
(`validation.refit`). Writes the model (weights + JSON config), a metrics JSON (the last epoch's row, the refit's
last terms as `refit_*`, the loss weights and their calibration, the kept epoch and its validation scores) and a
per-epoch curve of every loss term (training, validation, refit), validation score and weight; logs them to MLflow
(the outputs are written even when the tracker goes away mid-run: see `s2f.io.tracking`). Resumes from its
checkpoint when killed; under `torchrun` it trains with DDP.
"""

from __future__ import annotations

from pathlib import Path

from s2f.audio import SAMPLE_RATE
from s2f.config import TrainEncoderParams, clip_length_problem
from s2f.dataset import load_split
from s2f.io.checkpoints import load_identity_head, load_model, save_model
from s2f.io.tracking import EpochCurve, main_process_run
from s2f.stages.common import load_params, run_stage, stage_parser, write_curve, write_json
from s2f.training.distributed import setup_runtime, teardown_runtime
from s2f.training.encoder import train_encoder


def with_refit(rows: list[dict], refit_rows: list[dict]) -> list[dict]:
    """The validating run's rows with the refit's terms beside them (`refit_loss_*`), epoch by epoch: one curve."""
    refit = {row["epoch"]: {f"refit_{k}": v for k, v in row.items() if k.startswith("loss_")} for row in refit_rows}
    return [row | refit.get(row["epoch"], {}) for row in rows]


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--pre", type=Path, default=Path("data/preprocessed"),
                        help="preprocessed sample shards (the audio)")
    parser.add_argument("--features", type=Path, default=Path("data/features"),
                        help="face-feature shards, the speaker split and the identity head")
    parser.add_argument("--decoder", type=Path, default=Path("models/face_decoder.pt"),
                        help="the trained face decoder: the loss's first layer comes from it")
    parser.add_argument("--model", type=Path, default=Path("models/voice_encoder.pt"),
                        help="the trained voice encoder (weights; its JSON config is written beside it)")
    parser.add_argument("--metrics", type=Path, default=Path("reports/train_encoder.json"),
                        help="the loss weights, the kept epoch and its validation scores (a DVC metrics file)")
    parser.add_argument("--curve", type=Path, default=Path("reports/plots/train_encoder.csv"),
                        help="per-epoch training and validation terms as CSV, with a PNG of them beside it")
    parser.add_argument("--checkpoint", type=Path, default=Path("data/interim/checkpoints/train_encoder.pt"),
                        help="resumed from when it matches these params and data; the refit's is beside it "
                             "(<name>_refit.pt)")
    args = parser.parse_args(argv)
    params: TrainEncoderParams = load_params("train_encoder", args.params)
    runtime = setup_runtime(params.loop.cpu_threads)
    # the run opens first: a tracker that does not answer ends the stage before the data is loaded
    with main_process_run("train_encoder", params.model_dump(), runtime.is_main) as run:
        data = load_split(args.pre, args.features, "train", audio=True).for_training(params.loop.in_memory_mb)
        if run is not None:
            run.log_dataset(data.manifest, "train", "data/features")
        if problem := clip_length_problem("train_encoder.crop_seconds", params.crop_seconds,
                                          data.audio.shape[1] / SAMPLE_RATE, args.params):
            raise SystemExit(f"error: {problem}")
        decoder = load_model(args.decoder)
        backend = str(data.manifest["backend"].iloc[0]) if "backend" in data.manifest else "dlib"
        # the head is needed to train on distillation (the paper's λ2 = 200 for vggface under `auto`) and, when
        # there, reports the term even while its weight is 0
        head_path = args.features / "identity_head.pt"
        distills = params.loss.distill > 0 or params.loss.mode(backend) == "paper"
        head = load_identity_head(head_path) if distills or head_path.is_file() else None
        curve = EpochCurve(run, label="train_encoder", epochs=params.epochs)
        refits: list[EpochCurve] = []   # the refit's curve, made once validation has chosen how long it runs

        def refit_curve(epochs: int) -> EpochCurve:
            refits.append(EpochCurve(run, prefix="refit_", label="train_encoder refit", epochs=epochs))
            return refits[-1]

        trained = train_encoder(data.audio, data.embedding, decoder.first, head, params, runtime, curve,
                                args.checkpoint, speakers=data.speakers, backend=backend, refit_log=refit_curve)
        summary = trained.summary()
        refit = refits[0] if refits else None
        if run is not None:  # the main process
            meta = {"trained_on_samples": trained.train_samples, "preset": params.model.preset,
                    "kept_epoch": trained.kept_epoch}
            save_model(trained.model, args.model, meta)
            # the scores of the weights saved: the refit's last epoch, or else the kept epoch's
            scores, step, stamp = refit.scores() if refit else curve.scores(trained.kept_epoch)
            run.log_model(args.model, "voice_encoder", scores | summary, step=step, stamp=stamp, params=meta)
            rows = with_refit(curve.rows, refit.rows if refit else [])
            run.log_artifact(write_curve(args.curve, rows, "train_encoder: loss terms (training, validation, "
                                                           "refit) and validation retrieval per epoch"), "plots")
    teardown_runtime(runtime)
    if not runtime.is_main:
        return
    refit_losses = {k: v for k, v in refit.scores()[0].items() if k.startswith("refit_loss_")} if refit else {}
    write_json(args.metrics, curve.last | refit_losses | summary | {"samples": len(data.audio),
                                                                   "processes": runtime.world_size})
    chosen = f"epoch {trained.kept_epoch}, numbered from 0 as in the loss CSV and plot" + (
        f", validation R@1 {summary['kept_val_recall_at_1']:.3f}" if "kept_val_recall_at_1" in summary else "")
    if refit:
        print(f"train_encoder: final loss {refit.last['loss_total']:.4f} of the refit on all {trained.train_samples} "
              f"training samples for {trained.refit_epochs} epochs (validation chose {chosen})")
    else:
        print(f"train_encoder: final loss {curve.last['loss_total']:.4f} on {trained.train_samples} samples; "
              f"kept {chosen}")


if __name__ == "__main__":
    run_stage(main)
