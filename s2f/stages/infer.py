"""infer: a face from a voice. `s2f infer VOICE.wav -o FACE.png`, or `s2f infer FOLDER -o OUTDIR` for every audio file
in a folder (OUTDIR/<stem>.png).

The model is the registry's champion of a model family (`models:/NAME@champion` in the MLflow store of
MLFLOW_TRACKING_URI, default ./mlruns.db; --model NAME: speech2face by default, or a GAN family, wen2019 or wav2pix)
unless --model-uri names any other model URI, or local weight files (X.pt beside X.json) are given: --encoder and
--decoder for Speech2Face, --gan for a GAN family (models/gan/wen2019.pt). Audio: WAV, FLAC, OGG/Opus or MP3, up to
192 kHz, mono or multi-channel, 1 to 30 s, or a video (MP4, MKV, WebM, MOV) whose audio the bundled ffmpeg extracts;
each clip is repeated or cut to the 6 s the models were trained on. In a
folder, a bad file is reported with its reason and skipped; the exit status is 1 if any file failed. An output that
cannot be written (-o under a file, a PNG over a folder) is refused in one line before any model is loaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from s2f.inference import GanFaces, Speech2Face

DEFAULT_MODEL = "speech2face"
DEFAULT_URI = f"models:/{DEFAULT_MODEL}@champion"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="s2f infer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path, help="an audio or video file, or a folder of them")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="the PNG to write (file input) or the folder for <stem>.png files (folder input)")
    parser.add_argument("--model", metavar="NAME", help=f"a registered model family, loaded as models:/NAME@champion: "
                        f"{DEFAULT_MODEL} (the default) or a GAN family (wen2019, wav2pix)")
    parser.add_argument("--model-uri", help=f"any MLflow model URI of an audio → face model (default: {DEFAULT_URI})")
    parser.add_argument("--encoder", type=Path, help="local voice encoder weights (.pt, its .json beside it)")
    parser.add_argument("--decoder", type=Path, help="local face decoder weights (.pt, its .json beside it)")
    parser.add_argument("--gan", type=Path, help="a local GAN family model (.pt, its .json beside it), "
                                                 "e.g. models/gan/wen2019.pt")
    args = parser.parse_args(argv)
    if (args.encoder is None) != (args.decoder is None):
        parser.error("--encoder and --decoder go together")
    given = [flag for flag, value in (("--model", args.model), ("--model-uri", args.model_uri),
                                      ("--encoder/--decoder", args.encoder), ("--gan", args.gan)) if value is not None]
    if len(given) > 1:
        parser.error(f"give one of --model, --model-uri, --encoder/--decoder or --gan, not {' and '.join(given)}")
    args.model_uri = args.model_uri or f"models:/{args.model or DEFAULT_MODEL}@champion"
    if not args.input.exists():
        parser.error(f"{args.input} does not exist")
    return args


def load(args: argparse.Namespace) -> Speech2Face | GanFaces:
    """Local files, or the registry through the project's tracking URI; an unknown model ends with one line."""
    from s2f.inference import GanFaces, Speech2Face

    if args.encoder is not None:
        return Speech2Face.from_files(args.encoder, args.decoder)
    if args.gan is not None:
        return GanFaces.from_file(args.gan)
    import mlflow

    from s2f.io.tracking import tracking_uri

    try:
        model = load_audio_to_face(args.model_uri)
    except mlflow.exceptions.MlflowException as err:
        raise SystemExit(f"infer: cannot load {args.model_uri} from {tracking_uri()}: {err.message}") from None
    tell_training_data(args.model_uri)
    return model


def tell_training_data(model_uri: str) -> None:
    """One line on stderr when the registry says the model learned from the synthetic demo corpus (its
    `data.source` tag): its faces are no picture of a real voice, and a user must not take them for one."""
    import mlflow

    from s2f.registry import registry_version, trained_on_note

    try:
        version = registry_version(mlflow.MlflowClient(), model_uri)
    except mlflow.exceptions.MlflowException:
        return
    note = trained_on_note(version.tags) if version is not None else None
    if note:
        print(f"infer: note: {version.name} v{version.version} was {note}", file=sys.stderr)


def load_audio_to_face(model_uri: str) -> Speech2Face | GanFaces:
    """The model inside a logged audio → face pyfunc, the `speech2face` composite or a GAN family's, read through the
    project's tracking URI as `s2f.serving.batch.load_speech2face` reads the composite (`models:/` URIs resolve
    against its registry: MLFLOW_TRACKING_URI, else ./mlruns.db)."""
    import mlflow

    from s2f.inference import GanFaces, Speech2Face
    from s2f.io.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    model = getattr(mlflow.pyfunc.load_model(model_uri).unwrap_python_model(), "model", None)
    if not isinstance(model, Speech2Face | GanFaces):
        raise mlflow.exceptions.MlflowException.invalid_parameter_value(
            f"{model_uri} is not a Speech2Face composite or a GAN family (audio → face) model")
    return model


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


def run(args: argparse.Namespace, model: Speech2Face | GanFaces) -> None:
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
