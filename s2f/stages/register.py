"""register: put the trained models in the MLflow model registry as the new `challenger`.

Registers three versions together: `s2f-voice-encoder` (audio → face feature), `s2f-face-decoder` (face feature →
face image) and the composite `speech2face` (audio → face PNG, what `mlflow models serve` and `s2f infer` load).
Each is tagged with the git commit, the DVC hashes of the data it was trained on (from dvc.lock) and every metric of
reports/metrics.json (`metric.<name>`) and the sha256 of the model files, then aliased `challenger`.
Writes OUT (the DVC output: the models' content hash and the data hashes, nothing run-specific, so a fresh clone's
`dvc repro` reproduces `dvc.lock`) and, beside it, `registry_versions.json` (git-ignored, not a DVC output): the
versions, run id and commit this run created in this tracking store. Promotion to `champion` is a separate, gated
step: `s2f promote`.
"""

from __future__ import annotations

import json
from pathlib import Path

from s2f.evaluation import flatten_metrics
from s2f.io.tracking import git_commit, stage_run
from s2f.registry import dvc_data_version, models_sha256, register_candidates
from s2f.stages.common import run_stage, stage_parser, write_json


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--encoder", type=Path, default=Path("models/voice_encoder.pt"))
    parser.add_argument("--decoder", type=Path, default=Path("models/face_decoder.pt"))
    parser.add_argument("--metrics", type=Path, default=Path("reports/metrics.json"))
    parser.add_argument("--lock", type=Path, default=Path("dvc.lock"), help="where the DVC data hashes are read")
    parser.add_argument("--out", type=Path, default=Path("reports/registry.json"))
    args = parser.parse_args(argv)
    metrics = flatten_metrics(json.loads(args.metrics.read_text()))
    lineage = {"model.sha256": models_sha256(args.encoder, args.decoder), **dvc_data_version(args.lock)}
    provenance = {"git_commit": git_commit(), **lineage}
    with stage_run("register", provenance) as run:
        registered = register_candidates(args.encoder, args.decoder, metrics, provenance)
    write_json(args.out, lineage)
    write_json(args.out.with_name("registry_versions.json"),
               {"versions": registered.versions, "run_id": run.info.run_id, **provenance})
    shown = ", ".join(f"{name} v{version}" for name, version in registered.versions.items())
    print(f"register: {shown} aliased challenger (promote with `s2f promote`)")


if __name__ == "__main__":
    run_stage(main)
