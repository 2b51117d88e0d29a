"""ingest: one command from a corpus to validated training shards: source → preprocess → features → summary.json.

Give exactly one corpus: --manifest CSV (columns clip, speaker), --folder DIR (videos; sub-folder = speaker),
--avspeech CSV (YouTube segments, fetched with yt-dlp) or --voxceleb AUDIO --vggface IMAGES --meta CSV.
The preprocess and features sections of --params are used when the file exists (defaults otherwise). Media is read
where it is (not copied). Writes OUT/raw/manifest.csv, OUT/preprocessed/, OUT/features/ and OUT/summary.json
(`accepted`: a count; `rejected`: reason → count). Running it again resumes: finished shards are kept.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from s2f.config import (AvspeechSourceParams, DataParams, FeaturesParams, LocalSourceParams, PreprocessParams,
                        resolve_workers)
from s2f.features import compute_features
from s2f.io.shards import write_table
from s2f.preprocess import TooManyBadShards, preprocess_corpus
from s2f.sources import fetch
from s2f.stages.common import load_params, stage_parser, validate_manifest, write_json


def source_params(args: argparse.Namespace) -> DataParams:
    """The `data` params equivalent to the corpus named on the command line."""
    if args.avspeech:
        return DataParams(source="avspeech", avspeech=AvspeechSourceParams(csv=str(args.avspeech)))
    if args.manifest:
        local = LocalSourceParams(kind="manifest", manifest=str(args.manifest), copy_clips=False)
    elif args.folder:
        local = LocalSourceParams(kind="folder", folder=str(args.folder), copy_clips=False)
    else:
        local = LocalSourceParams(kind="voxceleb", voxceleb_audio=str(args.voxceleb), vggface_images=str(args.vggface),
                                  voxceleb_meta=str(args.meta), copy_clips=False)
    return DataParams(source="local", local=local)


def summarize(manifest: pd.DataFrame, accepted: pd.DataFrame, quarantined: pd.DataFrame,
              features: pd.DataFrame) -> dict:
    return {"clips": len(manifest), "accepted": len(features),
            "rejected": {str(k): int(v) for k, v in quarantined["reason"].value_counts().items()},
            "speakers": int(features["speaker"].nunique()) if len(features) else 0,
            "preprocessed": len(accepted), "lost_in_features": len(accepted) - len(features),
            "rejected_clips": quarantined[["sample_id", "clip", "reason", "detail"]].to_dict("records")}


def _section(name: str, path: Path, default):
    return load_params(name, path) if path.is_file() else default


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = stage_parser(__doc__)
    corpus = parser.add_mutually_exclusive_group(required=True)
    corpus.add_argument("--manifest", type=Path, help="CSV with clip and speaker columns (paths relative to it)")
    corpus.add_argument("--folder", type=Path, help="folder of talking-face videos")
    corpus.add_argument("--avspeech", type=Path, help="AVSpeech CSV: youtube_id, start, end, face_x, face_y")
    corpus.add_argument("--voxceleb", type=Path, help="VoxCeleb audio root (<id>/<video>/<n>.wav); needs --vggface, --meta")
    parser.add_argument("--vggface", type=Path, help="VGGFace photo root (<identity>/<n>.jpg)")
    parser.add_argument("--meta", type=Path, help="vox1_meta.csv or vox2_meta.csv")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: the params file's, 0 = all cores)")
    args = parser.parse_args(argv)
    if args.voxceleb and not (args.vggface and args.meta):
        parser.error("--voxceleb needs --vggface and --meta")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    pre: PreprocessParams = _section("preprocess", args.params, PreprocessParams())
    feat: FeaturesParams = _section("features", args.params, FeaturesParams())
    workers = resolve_workers(args.workers if args.workers is not None else pre.workers)
    try:
        manifest = fetch(source_params(args), args.out / "raw")
    except ValueError as err:
        raise SystemExit(f"ingest: {err}") from None
    validate_manifest(manifest, args.out / "raw" / "validation")
    write_table(args.out / "raw" / "manifest.csv", manifest)
    try:
        accepted, quarantined = preprocess_corpus(manifest, args.out / "raw", args.out / "preprocessed", pre, workers)
    except TooManyBadShards as err:
        raise SystemExit(f"ingest: {err}") from None
    features = compute_features(args.out / "preprocessed", args.out / "features", feat, workers) \
        if len(accepted) else accepted
    summary = summarize(manifest, accepted, quarantined, features)
    write_json(args.out / "summary.json", summary)
    print(f"ingest: {summary['accepted']} of {summary['clips']} clips accepted; rejected {summary['rejected']}; "
          f"summary in {args.out / 'summary.json'}")


if __name__ == "__main__":
    main()
