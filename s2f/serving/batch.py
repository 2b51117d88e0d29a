"""Batch inference over a folder of voice clips: what `s2f infer FOLDER` and the Prefect flow run.

A bad file is reported with its reason and skipped; the others still get their face. The model comes from the
registry (`load_speech2face("models:/speech2face@champion")`) or from local weight files (`Speech2Face.from_files`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from s2f.inference import MAX_BYTES, AudioInputError, Speech2Face, decode_audio, png_bytes

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au"}


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
    """An audio file → 16 kHz mono float32; an oversized file is refused before it is read."""
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise AudioInputError(path.name, "too_long", f"{size / 2**20:.0f} MiB file")
    return decode_audio(path.read_bytes(), path.name)


def infer_file(model: Speech2Face, voice: Path, out: Path) -> Path:
    """One clip → one PNG at `out` (its folder is created)."""
    image = model.face(read_voice(voice))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png_bytes(image))
    return out


def infer_folder(model: Speech2Face, folder: Path, out: Path) -> dict:
    """Every audio file directly in `folder` (by suffix, sorted) → `out/<stem>.png`.

    Returns {"total", "written", "failed": [{"file", "reason", "message"}], "outputs": [png paths]}; failures are
    AudioInputError reasons (not_audio, empty, too_long, too_short). Two files with one stem (a.wav, a.flac) keep
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
