"""infer: a face from a voice. `s2f infer VOICE.wav -o FACE.png`, or `s2f infer FOLDER -o OUTDIR` for every audio file
in a folder (OUTDIR/<stem>.png).

The model is the registry's champion (`models:/speech2face@champion` in the MLflow store of MLFLOW_TRACKING_URI,
default ./mlruns.db) unless --model-uri names another, or --encoder/--decoder give local weight files (X.pt beside
X.json). Audio: WAV, FLAC, OGG/Opus or MP3, up to 192 kHz, mono or multi-channel, 1 to 30 s; each clip is repeated or
cut to the 6 s the encoder was trained on. In a folder, a bad file is reported with its reason and skipped; the exit status
is 1 if any file failed. An output that cannot be written (-o under a file, a PNG over a folder) is refused in one
line before any model is loaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from s2f.inference import Speech2Face

DEFAULT_URI = "models:/speech2face@champion"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="s2f infer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path, help="an audio file, or a folder of them")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="the PNG to write (file input) or the folder for <stem>.png files (folder input)")
    parser.add_argument("--model-uri", default=DEFAULT_URI, help=f"an MLflow model URI (default: {DEFAULT_URI})")
    parser.add_argument("--encoder", type=Path, help="local voice encoder weights (.pt, its .json beside it)")
    parser.add_argument("--decoder", type=Path, help="local face decoder weights (.pt, its .json beside it)")
    args = parser.parse_args(argv)
    if (args.encoder is None) != (args.decoder is None):
        parser.error("--encoder and --decoder go together")
    if args.encoder is not None and args.model_uri != DEFAULT_URI:
        parser.error("give either --model-uri or --encoder/--decoder, not both")
    if not args.input.exists():
        parser.error(f"{args.input} does not exist")
    return args


def load(args: argparse.Namespace) -> Speech2Face:
    """Local files, or the registry through the project's tracking URI; an unknown model ends with one line."""
    from s2f.inference import Speech2Face

    if args.encoder is not None:
        return Speech2Face.from_files(args.encoder, args.decoder)
    import mlflow

    from s2f.io.tracking import tracking_uri
    from s2f.serving.batch import load_speech2face

    try:
        return load_speech2face(args.model_uri)
    except mlflow.exceptions.MlflowException as err:
        raise SystemExit(f"infer: cannot load {args.model_uri} from {tracking_uri()}: {err.message}") from None


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    from s2f.serving.batch import OutputError, output_problem

    problem = output_problem(args.output, folder=not args.input.is_file())
    if problem:
        raise SystemExit(f"infer: cannot write {args.output}: {problem}")
    model = load(args)
    try:
        run(args, model)
    except OutputError as err:   # the destination failed during the run (a full disk): still one line
        raise SystemExit(f"infer: {err}") from None


def run(args: argparse.Namespace, model: Speech2Face) -> None:
    """One file → one PNG, or a folder → a folder of PNGs with a summary; exit status 1 if any clip failed."""
    from s2f.inference import AudioInputError
    from s2f.serving.batch import infer_file, infer_folder

    if args.input.is_file():
        try:
            print(f"infer: wrote {infer_file(model, args.input, args.output)}")
        except AudioInputError as err:
            print(f"infer: {err}", file=sys.stderr)
            raise SystemExit(1) from None
        return
    summary = infer_folder(model, args.input, args.output)
    for failure in summary["failed"]:
        print(f"infer: skipped {failure['message']}", file=sys.stderr)
    print(f"infer: {summary['written']} of {summary['total']} faces written to {args.output}, "
          f"{len(summary['failed'])} failed")
    if summary["failed"] or not summary["total"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
