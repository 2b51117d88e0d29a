"""register: put the trained models in the MLflow model registry as the new `challenger`s.

Registers three Speech2Face versions together: `s2f-voice-encoder` (audio → face feature), `s2f-face-decoder` (face
feature → face image) and the composite `speech2face` (audio → face PNG, what `mlflow models serve` and `s2f infer`
load); and one version per GAN family of the params' `train_gan.families`, named after it (`wen2019`, `wav2pix`:
audio → face PNG from GAN_MODELS/FAMILY.pt, served and inferred the same way). Each is tagged with its `family`, the
git commit, the data source it was trained on (`data.source`: `demo` is the synthetic corpus, which `s2f infer` and
the web page say), the DVC hashes of that data (from dvc.lock), the sha256 of its model files and the headline
metrics of its own section of reports/metrics.json with the promotion gate's metric (`metric.<name>` from
`report["speech2face"]`, `report["wen2019"]`, …), then aliased `challenger`. Every metric of that section is linked
to the version's LoggedModel (`speech2face.<name>`, `wen2019.<name>`: the evaluate run's names).
Writes OUT (the DVC output: the models' content hashes — `model.sha256` for Speech2Face, `FAMILY.model.sha256` per
family — and the data hashes, nothing run-specific, so a fresh clone's `dvc repro` reproduces `dvc.lock`) and, beside
it, `registry_versions.json` (git-ignored, not a DVC output): the versions, run id and commit this run created in
this tracking store. Promotion to `champion` is a separate, gated step: `s2f promote [--model NAME]`.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

from s2f.io.tracking import git_commit, stage_run, store_writes
from s2f.registry import (COMPOSITE, DATA_SOURCE_TAG, SHA_TAG, dvc_data_version, log_candidates, log_family,
                          models_sha256, report_section, tag_challengers)
from s2f.stages.common import load_params, run_stage, stage_parser, write_json


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--encoder", type=Path, default=Path("models/voice_encoder.pt"),
                        help="the voice encoder to register")
    parser.add_argument("--decoder", type=Path, default=Path("models/face_decoder.pt"),
                        help="the face decoder to register")
    parser.add_argument("--gan-models", type=Path, default=Path("models/gan"),
                        help="the GAN families' models, FAMILY.pt beside FAMILY.json (train_gan@FAMILY)")
    parser.add_argument("--metrics", type=Path, default=Path("reports/metrics.json"),
                        help="the evaluation report; each family's section is tagged on its version")
    parser.add_argument("--lock", type=Path, default=Path("dvc.lock"), help="where the DVC data hashes are read")
    parser.add_argument("--out", type=Path, default=Path("reports/registry.json"),
                        help="the registered models' content hashes and data versions (a DVC output)")
    args = parser.parse_args(argv)
    if not sys.stderr.isatty():  # MLflow's per-model upload bars are \r-redrawn: in a log they pile up, 270 wide
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    families = {family: args.gan_models / f"{family}.pt" for family in load_params("train_gan", args.params).families}
    missing = [str(pt) for pt in families.values() if not (pt.is_file() and pt.with_suffix(".json").is_file())]
    if missing:
        parser.error(f"no model at {', '.join(missing)} (or its .json): train_gan@FAMILY writes it for every family "
                     f"of train_gan.families in {args.params}")
    report = json.loads(args.metrics.read_text())
    try:
        metrics = {name: report_section(report, name, args.metrics) for name in (COMPOSITE, *families)}
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    shas = {COMPOSITE: models_sha256(args.encoder, args.decoder)} | {f: models_sha256(pt) for f, pt in families.items()}
    data = dvc_data_version(args.lock)
    lineage = {SHA_TAG: shas[COMPOSITE], **{f"{family}.{SHA_TAG}": shas[family] for family in families}, **data}
    commit, source = git_commit(), {DATA_SOURCE_TAG: load_params("data", args.params).source}
    gate = load_params("promote", args.params).metric
    provenance = {name: {"git_commit": commit, **source, SHA_TAG: shas[name], **data} for name in metrics}
    with stage_run("register", {"git_commit": commit, **source, **lineage}) as run:
        with store_writes():  # each step's writes whole: a signal waits for the step, then ends the run KILLED
            logged = log_candidates(args.encoder, args.decoder)
        for family, pt in families.items():
            with store_writes():
                logged |= log_family(pt, family)
        with store_writes():
            versions = tag_challengers(logged, metrics, gate, provenance).versions
    write_json(args.out, lineage)
    write_json(args.out.with_name("registry_versions.json"),
               {"versions": versions, "run_id": run.info.run_id, "git_commit": commit, **lineage})
    shown = ", ".join(f"{name}\0v{version}" for name, version in versions.items())  # \0: never wrapped apart
    print(textwrap.fill(f"register: aliased challenger: {shown}", width=100, subsequent_indent="  ",
                        break_on_hyphens=False, break_long_words=False).replace("\0", " "))  # a terminal's width
    print("register: promote with `s2f promote [--model NAME]`")


if __name__ == "__main__":
    run_stage(main)
