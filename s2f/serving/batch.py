"""Batch inference over a folder of voice clips: what `s2f infer FOLDER` and the Prefect flow run.

A bad file is reported with its reason and skipped; the others still get their face. The model comes from the
registry (`load_speech2face("models:/speech2face@champion")`) or from local weight files (`Speech2Face.from_files`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from s2f.inference import MAX_BYTES, AudioInputError, Speech2Face, decode_audio, png_bytes

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au",
                  ".mp4", ".m4a", ".mkv", ".webm", ".mov", ".avi"}  # videos: their audio, through ffmpeg


class OutputError(Exception):
    """A PNG that could not be written: the destination's fault, not the clip's, so a batch stops (the next PNG
    would fail the same way) with one line instead of a traceback."""


def load_speech2face(model_uri: str) -> Speech2Face:
    """The `Speech2Face` inside a logged composite pyfunc, read through the project's tracking URI (`models:/` URIs
    resolve against its registry: MLFLOW_TRACKING_URI, else ./mlruns.db)."""
    import mlflow

    from s2f.io.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    model = getattr(mlflow.pyfunc.load_model(model_uri).unwrap_python_model(), "model", None)
    if not isinstance(model, Speech2Face):
        raise mlflow.exceptions.MlflowException.invalid_parameter_value(
            f"{model_uri} is not a Speech2Face composite (audio → face) model")
    return model


def read_voice(path: Path) -> np.ndarray:
    """An audio or video file → 16 kHz mono float32; an oversized file is refused before it is read."""
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise AudioInputError(path.name, "too_large", f"{size / 2**20:.0f} MiB file > {MAX_BYTES / 2**20:.0f} MiB")
    return decode_audio(path.read_bytes(), path.name)


def output_problem(out: Path, folder: bool) -> str | None:
    """Why `out` cannot be written — a PNG, or with `folder` a folder of them — or None when it can.

    Why before the work: loading a model and running every clip only to fail on the first write wastes the run and
    ends in a traceback. This only looks (nothing is created): the nearest existing folder on the way must be a
    folder we may write into; the folders below it are made when the first PNG is written.
    """
    out = Path(out)
    if out.is_dir() != folder and out.exists():
        return f"{out} is a file, not a folder" if folder else f"{out} is a folder"
    existing = out if folder else out.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if out.is_file():   # overwritten in place: only the file's own permission matters
        return None if os.access(out, os.W_OK) else f"{out} is not writable"
    return None if os.access(existing, os.W_OK | os.X_OK) else f"{existing} is not writable"


def infer_file(model: Speech2Face, voice: Path, out: Path) -> Path:
    """One clip → one PNG at `out` (its folder is created); `OutputError` if it cannot be written."""
    image = model.face(read_voice(voice))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(png_bytes(image))
    except OSError as err:
        raise OutputError(f"cannot write {out}: {err.strerror or err}") from err
    return out


def infer_folder(model: Speech2Face, folder: Path, out: Path) -> dict:
    """Every audio file directly in `folder` (by suffix, sorted) → `out/<stem>.png`.

    Returns {"total", "written", "failed": [{"file", "reason", "message"}], "outputs": [png paths]}; failures are
    AudioInputError reasons (`s2f.inference.REASONS`). Two files with one stem (a.wav, a.flac) keep
    their suffix in the PNG name (a.flac.png) rather than overwrite each other.
    """
    voices = sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    stems = [p.stem for p in voices]
    outputs, failed = [], []
    for voice in voices:
        name = voice.stem if stems.count(voice.stem) == 1 else voice.name
        try:
            outputs.append(str(infer_file(model, voice, Path(out) / f"{name}.png")))
        except AudioInputError as err:
            failed.append({"file": str(voice), "reason": err.reason, "message": str(err)})
    return {"total": len(voices), "written": len(outputs), "failed": failed, "outputs": outputs}
