"""evaluate: voice → face on held-out speakers for every model family on one table, for 3 s and 6 s of voice.

The 3 s numbers (`evaluate.short_seconds`) are the first 3 s of each clip repeated to 6 s, as serving does with a
3 s request (`s2f.audio.fit_to_clip`); their key in the report says so: `3s_repeated`.

reports/metrics.json is keyed by family, every float to six significant digits (the last ones follow the CPU's kernels):
- `speech2face`: the paper's report on the predicted face feature (feature cosine / L1 / L2, retrieval R@K over
  galleries of up to 100 identities with chance, gender agreement where labelled, craniofacial Pearson r), and
  `decoded`: the faces the decoder draws from it, measured as images like the GANs' (`s2f.generated_evaluation`);
- each GAN family of `train_gan.families` (models/gan/<family>.pt): retrieval and 1:2 matching of the generated
  faces' features, detection ratio and Fréchet distance, identity accuracy on seen speakers' unseen speech.
Also writes reports/headline.json (the few numbers `dvc metrics show` lists: R@1/R@10, matching and faces found
per family, and chance), reports/face_grid.png (true face, Speech2Face from 3 s and 6 s, each GAN from 6 s), the
plots as PNG (reports/plots/retrieval.png: R@K for 3 s and 6 s beside chance; reports/plots/families.png: the
families side by side) and a per-family comparison for `dvc plots` (reports/plots/families.csv), and logs all of
it, the metrics flattened, to MLflow. data/evaluation/faces.npz holds what the metrics were computed from, row for
row with the test split: Speech2Face's predicted features and decoded faces and each GAN family's faces, at both
voice lengths (`sample_id`, `speaker`, `speech2face_feature_6s`, `wen2019_face_3s_repeated`, …). It is a DVC output
kept out of git, so a fresh clone's `dvc repro` runs this stage (and logs its MLflow run) instead of finding every
output already committed.
Reads the `evaluate` section, `preprocess.crop_margin` (where the face sits in a crop), `features.backend` (the
face-feature network that embeds generated faces) and `train_gan` (the families and the clips they left out).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from s2f.audio import SAMPLE_RATE
from s2f.baselines import ridge_baseline_predictions
from s2f.config import EvaluateParams, FeaturesParams, TrainGanParams, clip_length_problem
from s2f.dataset import SplitData, load_split
from s2f.evaluation import (GRID_TITLES, decode_images, evaluate_paper, face_grid, finite_or_none,
                            flatten_metrics, predict_short, retrieval_metrics, short_key, speaker_rows,
                            to_significant)
from s2f.faces.features import get_backend
from s2f.generated_evaluation import gan_generator, generate_faces, image_metrics, unseen_speech_metrics
from s2f.io.checkpoints import load_model
from s2f.io.shards import write_shard
from s2f.io.tracking import stage_run
from s2f.metrics import feature_distances
from s2f.plots import families_png, retrieval_png
from s2f.report_summary import headline, plot_label, retrieval_sections
from s2f.split import unseen_speech
from s2f.stages.common import load_params, run_stage, stage_parser, write_curve, write_json
from s2f.training.distributed import setup_runtime
from s2f.training.encoder import predict_features


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--pre", type=Path, default=Path("data/preprocessed"), help="preprocessed shards")
    parser.add_argument("--features", type=Path, default=Path("data/features"), help="face-feature shards and split")
    parser.add_argument("--encoder", type=Path, default=Path("models/voice_encoder.pt"),
                        help="the trained voice encoder")
    parser.add_argument("--decoder", type=Path, default=Path("models/face_decoder.pt"),
                        help="the trained face decoder")
    parser.add_argument("--gan-models", type=Path, default=Path("models/gan"),
                        help="folder of the GAN families' models (<family>.pt), one per train_gan.families")
    parser.add_argument("--metrics", type=Path, default=Path("reports/metrics.json"),
                        help="every metric of every family (JSON)")
    parser.add_argument("--headline", type=Path, default=Path("reports/headline.json"),
                        help="the headline numbers only: DVC's metrics file")
    parser.add_argument("--grid", type=Path, default=Path("reports/face_grid.png"),
                        help="true faces and each family's faces for a few held-out speakers")
    parser.add_argument("--faces", type=Path, default=Path("data/evaluation/faces.npz"),
                        help="every held-out clip's predicted features and generated faces, per family and voice "
                             "length (uint8 images, an uncompressed .npz)")
    parser.add_argument("--comparison", type=Path, default=Path("reports/plots/families.csv"),
                        help="one row per family: the numbers `dvc plots` compares; its PNG and retrieval.png go "
                             "beside it")
    args = parser.parse_args(argv)
    params: EvaluateParams = load_params("evaluate", args.params)
    margin = load_params("preprocess", args.params).crop_margin
    features: FeaturesParams = load_params("features", args.params)
    gans: TrainGanParams = load_params("train_gan", args.params)
    test = load_split(args.pre, args.features, "test", audio=True, faces=True).in_memory()
    if problem := clip_length_problem("evaluate.short_seconds", params.short_seconds,
                                      test.audio.shape[1] / SAMPLE_RATE, args.params, equal_ok=False):
        raise SystemExit(f"error: {problem}")
    train = load_split(args.pre, args.features, "train", audio=True).in_memory()
    dev = setup_runtime(params.cpu_threads).device
    backend = get_backend(features.backend, **({"weights": features.vggface_weights}
                                               if features.backend == "vggface" else {}))
    short = short_key(params.short_seconds)

    encoder, decoder = load_model(args.encoder, dev), load_model(args.decoder, dev)
    pred = {short: predict_short(encoder, test.audio, params.short_seconds), "6s": predict_features(encoder, test.audio)}
    s2f_report = evaluate_paper(pred[short], pred["6s"], test, train, decoder, params.ks, params.gallery_size,
                                params.seed, params.craniofacial_max, margin, params.short_seconds)
    decoded = {length: decode_images(decoder, p) for length, p in pred.items()}
    s2f_report["decoded"] = image_metrics(decoded, test, backend, params.ks, params.gallery_size, params.seed, margin)
    report, generated = {"speech2face": s2f_report, "ridge": ridge_report(test, train, params, args.params)}, {}
    held = unseen_speech(train.manifest, gans.unseen_speech_per_speaker)
    for family in gans.families:
        print(f"evaluate: {family}")
        generate = gan_generator(load_model(args.gan_models / f"{family}.pt", dev))
        generated[family] = generate_faces(generate, test.audio, params.short_seconds)
        report[family] = image_metrics(generated[family], test, backend, params.ks, params.gallery_size,
                                       params.seed, margin)
        if held.any():
            report[family]["unseen_speech"] = unseen_speech_metrics(
                generate(train.audio[held]), train.speakers[held], _rows(train, ~held), backend, margin)
    report = to_significant(finite_or_none(report))  # not the last digits, which follow the CPU's kernels
    grid = _grid(test, pred, decoded, generated, decoder, params.grid_speakers, short)
    args.grid.parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.grid)
    write_shard(args.faces, evaluated_faces(test, pred, decoded, generated))
    report, notes = numbers_only(report)
    for where, note in notes:
        print(f"evaluate: note: {where}: {note}")
    write_json(args.metrics, report)
    write_json(args.headline, headline(report))
    rows = comparison_rows(report)
    write_curve(args.comparison, rows)
    pngs = [retrieval_png(retrieval_sections(report), args.comparison.with_name("retrieval.png")),
            families_png(rows, args.comparison.with_suffix(".png"))]
    with stage_run("evaluate", params.model_dump()) as run:  # guarded: a tracker outage costs a warning, not the stage
        run.log_dataset(test.manifest, "test", "data/features", context="evaluation")
        run.log_metrics(flatten_metrics(report))
        for path in (args.grid, args.metrics, args.headline, args.comparison, *pngs):
            run.log_artifact(path)
    for row in comparison_rows(report):
        print("evaluate: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))


def evaluated_faces(test: SplitData, pred: dict, decoded: dict, generated: dict) -> dict[str, np.ndarray]:
    """What the report was computed from, row for row with the test split: a family's faces can be looked at, or
    measured another way, without running its model again."""
    arrays = {"sample_id": test.manifest["sample_id"].to_numpy(str), "speaker": np.asarray(test.speakers, str)}
    for length in pred:
        arrays[f"speech2face_feature_{length}"] = np.asarray(pred[length], np.float32)
        arrays[f"speech2face_face_{length}"] = decoded[length]
    for family, faces in generated.items():
        arrays |= {f"{family}_face_{length}": images for length, images in faces.items()}
    return arrays


def ridge_report(test: SplitData, train: SplitData, params: EvaluateParams, params_file: Path) -> dict:
    """The baseline the voice encoder must beat: ridge regression from spectral statistics to face features, its
    strength chosen on the encoder's own validation speakers (`train_encoder.validation`)."""
    validation = load_params("train_encoder", params_file).validation
    ridge = ridge_baseline_predictions(train.audio, train.embedding, train.speakers, test.audio, params.short_seconds,
                                       max(validation.fraction, 0.2), validation.seed)
    preds = {short_key(params.short_seconds): ridge.pred_short, "6s": ridge.pred_6s}
    return {"features": {name: feature_distances(p, test.embedding) for name, p in preds.items()},
            "retrieval": {name: retrieval_metrics(p, test, params.ks, params.gallery_size, params.seed)
                          for name, p in preds.items()}}


def numbers_only(tree: dict, where: str = "") -> tuple[dict, list[tuple[str, str]]]:
    """The report without its text values (DVC's metrics are numbers), and those texts as (key path, text): why a
    metric is missing (no gender labels, no decoder) is for the log, not for `dvc metrics show`."""
    kept, notes = {}, []
    for key, value in tree.items():
        path = f"{where}.{key}" if where else key
        if isinstance(value, dict):
            kept[key], inner = numbers_only(value, path)
            notes += inner
        elif isinstance(value, str):
            notes.append((path, value))
        else:
            kept[key] = value
    return kept, notes


def comparison_rows(report: dict) -> list[dict]:
    """One row per family of the headline numbers at 6 s (Speech2Face twice: its feature and its decoded image)."""
    rows = []
    for family, section in report.items():
        for name, part in ((family, section), (plot_label(family, "face"), section.get("decoded"))):
            if part is None or "retrieval" not in part:
                continue
            six = part["retrieval"]["6s"]
            rows.append({"family": name, "recall_at_1": six.get("recall_at_1"), "recall_at_10": six.get("recall_at_10"),
                         "chance_at_1": six.get("chance_at_1"), "chance_at_10": six.get("chance_at_10"),
                         "matching": part.get("matching", {}).get("6s", {}).get("accuracy"),
                         "detection_ratio": part.get("images", {}).get("detection_ratio")})
    return rows


def _rows(data: SplitData, keep: np.ndarray) -> SplitData:
    return SplitData(data.manifest[keep].reset_index(drop=True), data.embedding[keep],
                     None if data.audio is None else data.audio[keep], None if data.face is None else data.face[keep])


def _grid(test: SplitData, pred: dict, decoded: dict, generated: dict, decoder, speakers: int, short: str):
    """True face | Speech2Face from the face feature, from 3 s, from 6 s | each GAN family from 6 s."""
    rows = speaker_rows(test, speakers)
    columns = [decode_images(decoder, test.embedding[rows]), decoded[short][rows], decoded["6s"][rows]]
    columns += [faces["6s"][rows] for faces in generated.values()]
    titles = (*GRID_TITLES, *(f"{family} 6 s" for family in generated))
    return face_grid(test.face[rows], columns, titles)


if __name__ == "__main__":
    run_stage(main)
