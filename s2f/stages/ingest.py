"""ingest: one command from a corpus to validated training shards: source → preprocess → features → summary.json.

Give exactly one corpus: --manifest CSV (columns clip, speaker), --folder DIR (videos; sub-folder = speaker),
--avspeech CSV (YouTube segments, fetched with yt-dlp) or --voxceleb AUDIO --vggface IMAGES --meta CSV.
The preprocess and features sections of --params are used when the file exists (defaults otherwise). Media is read
where it is (not copied). Writes OUT/raw/manifest.csv, OUT/preprocessed/, OUT/features/ and OUT/summary.json
(`accepted`: a count; `rejected`: reason → count). Running it again resumes: finished shards are kept.
One ingest at a time per OUT: a second one into the same folder refuses at once, naming the folder and the PID
that holds it (two would redo the same work and overwrite each other's shards).
Manifest media outside the manifest's folder is refused unless named with --allow-root.
"""

from __future__ import annotations

import argparse
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from s2f.config import (AvspeechSourceParams, DataParams, FeaturesParams, LocalSourceParams, PreprocessParams,
                        resolve_workers)
from s2f.features import compute_features
from s2f.io.shards import write_table
from s2f.numerics import cap_cpu_isa
from s2f.preprocess import TooManyBadShards, preprocess_corpus
from s2f.sources.fetch import fetch
from s2f.stages.common import load_params, stage_parser, validate_manifest, write_json


LOCK_NAME = ".s2f-ingest.lock"


def source_params(args: argparse.Namespace) -> DataParams:
    """The `data` params equivalent to the corpus named on the command line."""
    if args.avspeech:
        return DataParams(source="avspeech", avspeech=AvspeechSourceParams(csv=str(args.avspeech)))
    roots = [str(Path(r).absolute()) for r in args.allow_root]
    if args.manifest:
        local = LocalSourceParams(kind="manifest", manifest=str(args.manifest), copy_clips=False, allowed_roots=roots)
    elif args.folder:
        local = LocalSourceParams(kind="folder", folder=str(args.folder), copy_clips=False, allowed_roots=roots)
    else:
        local = LocalSourceParams(kind="voxceleb", voxceleb_audio=str(args.voxceleb), vggface_images=str(args.vggface),
                                  voxceleb_meta=str(args.meta), copy_clips=False, allowed_roots=roots)
    return DataParams(source="local", local=local)


@contextmanager
def exclusive_out(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on `out` for the whole run, or refuse at once (no waiting: the other run may take
    hours, and a caller that wants to wait can retry). The lock is the kernel's (flock), so a killed run never
    leaves a stale one; the file keeps the holder's PID for the refusal message."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "not yet recorded"
            raise SystemExit(f"ingest: {out} is in use by another s2f ingest (pid {holder}); wait for it to finish "
                             "or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


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
    parser.add_argument("--allow-root", type=Path, action="append", default=[], metavar="DIR",
                        help="a folder outside the manifest's (or --folder's) that its media may be in; repeatable")
    args = parser.parse_args(argv)
    if args.voxceleb and not (args.vggface and args.meta):
        parser.error("--voxceleb needs --vggface and --meta")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    pre: PreprocessParams = _section("preprocess", args.params, PreprocessParams())
    feat: FeaturesParams = _section("features", args.params, FeaturesParams())
    workers = resolve_workers(args.workers if args.workers is not None else pre.workers)
    with exclusive_out(args.out):
        run(args, pre, feat, workers)


def run(args: argparse.Namespace, pre: PreprocessParams, feat: FeaturesParams, workers: int) -> None:
    """Source → preprocess → features → summary.json, under `args.out` (locked by the caller)."""
    try:
        manifest = fetch(source_params(args), args.out / "raw")
    except ValueError as err:
        raise SystemExit(f"ingest: {err}") from None
    validate_manifest(manifest, args.out / "raw" / "validation", args.out / "raw" / "gx")
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
    cap_cpu_isa()  # the identity head it fits is the same bytes as `gather`'s (s2f.numerics)
    main()
