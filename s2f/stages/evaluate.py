"""evaluate: voice → face on held-out speakers, the paper's way, for 3 s and 6 s of voice.

The 3 s numbers (`evaluate.short_seconds`) are the first 3 s of each clip repeated to 6 s, as serving does with a
3 s request (`s2f.audio.fit_to_clip`); their key in the report says so: `3s_repeated`.

Reads the `evaluate` section (and `preprocess.crop_margin`, which places the face in a decoded crop). Reports
feature cosine / L1 / L2, retrieval R@K over galleries of up to 100 identities with chance, gender agreement where
the corpus has labels, craniofacial measurements (Pearson r, dlib landmarks of faces decoded from voice against
faces decoded from the true feature) and a grid of faces. Writes reports/metrics.json (a DVC metric, nested) and
reports/face_grid.png (a DVC plot); logs both, flattened, to MLflow.
"""

from __future__ import annotations

from pathlib import Path

from s2f.audio import SAMPLE_RATE
from s2f.config import EvaluateParams, PreprocessParams, clip_length_problem
from s2f.dataset import load_split
from s2f.evaluation import evaluate_paper, flatten_metrics, paper_face_grid, predict_short, short_key
from s2f.io.checkpoints import load_model
from s2f.io.tracking import stage_run
from s2f.stages.common import load_params, run_stage, stage_parser, write_json
from s2f.training.distributed import setup_runtime
from s2f.training.encoder import predict_features


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
    crop: PreprocessParams = load_params("preprocess", args.params)
    test = load_split(args.pre, args.features, "test", audio=True, faces=True)
    if problem := clip_length_problem("evaluate.short_seconds", params.short_seconds,
                                      test.audio.shape[1] / SAMPLE_RATE, args.params, equal_ok=False):
        raise SystemExit(f"error: {problem}")
    train = load_split(args.pre, args.features, "train", audio=False)
    dev = setup_runtime().device
    encoder, decoder = load_model(args.encoder, dev), load_model(args.decoder, dev)
    pred_short = predict_short(encoder, test.audio, params.short_seconds)
    pred_full = predict_features(encoder, test.audio)
    report = evaluate_paper(pred_short, pred_full, test, train, decoder, params.ks, params.gallery_size, params.seed,
                            params.craniofacial_max, crop.crop_margin, params.short_seconds)
    grid = paper_face_grid(test, pred_short, pred_full, decoder, params.grid_speakers)
    args.grid.parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.grid)
    write_json(args.metrics, report)
    with stage_run("evaluate", params.model_dump()) as run:  # guarded: a tracker outage costs a warning, not the stage
        run.log_metrics(flatten_metrics(report))
        run.log_artifact(args.grid)
        run.log_artifact(args.metrics)
    six = report["retrieval"]["6s"]
    shown = {k: round(v, 3) for k, v in six.items() if k.startswith(("recall", "chance", "gallery"))}
    short = short_key(params.short_seconds)
    print(f"evaluate (6 s): {shown}; {short} R@1 {report['retrieval'][short].get('recall_at_1', float('nan')):.3f}")


if __name__ == "__main__":
    run_stage(main)
