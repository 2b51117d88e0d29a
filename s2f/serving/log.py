"""Log the Speech2Face pyfuncs and the GAN families' ones into the active MLflow run, as code plus weight files (see
`s2f.serving`).

Each model is self-contained: the model file, this package as `code_paths`, the weights and configs as artifacts,
explicit pip requirements (pinned to what is installed here; inferring them would import-trace the model, slowly),
a signature and a small input example (1 s of an 8 kHz tone, so the example also exercises resampling).
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from s2f.inference import b64encode
from s2f.serving import WEIGHTS

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo

    # never imported (each sets MLflow's model when loaded); named here so that `s2f.lineage` counts the model files
    # logged below by path in the register stage's code deps: a change to one re-registers the models
    from s2f.serving import (face_decoder_model, speech2face_model, voice_encoder_model,  # noqa: F401
                             voice_to_face_model)

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent   # the whole `s2f` package travels with the model
# the LoggedModel type of what serving loads, told apart in the MLflow UI from the training runs' models (type
# s2f.io.tracking.TRAINED_TYPE, "weights")
SERVED_TYPE = "pyfunc"
REQUIREMENTS = ("mlflow", "torch", "numpy", "pandas", "scipy", "soundfile", "pillow")


def log_speech2face(encoder: Path, decoder: Path, name: str = "model",
                    registered_model_name: str | None = None) -> ModelInfo:
    """The composite: base64 audio (column `audio`) → base64 PNG (column `face`)."""
    return _log_audio_to_face("speech2face_model.py", {"encoder": encoder, "decoder": decoder}, name,
                              registered_model_name)


def log_voice_to_face(model_pt: Path, family: str, name: str | None = None,
                      registered_model_name: str | None = None) -> ModelInfo:
    """A GAN family's `VoiceToFace` (X.pt + X.json): the composite's request and response, base64 audio (column
    `audio`) → base64 PNG (column `face`). Logged as `name` (default: the family); a file of another family or kind
    is refused, so `wav2pix` weights cannot be registered as `wen2019`."""
    from s2f.io.checkpoints import ModelFileError, read_meta

    meta = read_meta(Path(model_pt))
    found = meta.get("config", {}).get("family") if meta.get("kind") == "VoiceToFace" else meta.get("kind")
    if found != family:
        raise ModelFileError(f"{model_pt}: a {found} model, not the GAN family {family!r}")
    return _log_audio_to_face("voice_to_face_model.py", {"model": model_pt}, name or family, registered_model_name)


def _log_audio_to_face(code: str, weights: dict[str, Path], name: str,
                       registered_model_name: str | None) -> ModelInfo:
    """Every audio → face model's signature and input example: the composite's and each GAN family's."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    signature = ModelSignature(Schema([ColSpec("string", "audio")]), Schema([ColSpec("string", "face")]))
    return _log(code, weights, name, registered_model_name, signature, pd.DataFrame({"audio": [example_audio()]}))


def log_voice_encoder(encoder: Path, name: str = "voice_encoder",
                      registered_model_name: str | None = None) -> ModelInfo:
    """The encoder: base64 audio (column `audio`) → face feature, a list of floats (column `feature`)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Schema

    signature = ModelSignature(Schema([ColSpec("string", "audio")]),
                               Schema([ColSpec(Array(DataType.double), "feature")]))
    return _log("voice_encoder_model.py", {"encoder": encoder}, name, registered_model_name,
                signature, pd.DataFrame({"audio": [example_audio()]}))


def log_face_decoder(decoder: Path, name: str = "face_decoder",
                     registered_model_name: str | None = None) -> ModelInfo:
    """The decoder: face feature, a list of floats (column `feature`) → base64 PNG (column `face`)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Schema

    signature = ModelSignature(Schema([ColSpec(Array(DataType.double), "feature")]),
                               Schema([ColSpec("string", "face")]))
    in_dim = json.loads(Path(decoder).with_suffix(".json").read_text())["config"]["in_dim"]
    return _log("face_decoder_model.py", {"decoder": decoder}, name, registered_model_name,
                signature, pd.DataFrame({"feature": [[0.0] * in_dim]}))


def _log(code: str, weights: dict[str, Path], name: str, registered_model_name: str | None,
         signature: object, example: pd.DataFrame) -> ModelInfo:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        artifacts = {key: str(_stage(Path(path), Path(tmp) / key)) for key, path in weights.items()}
        return mlflow.pyfunc.log_model(
            name=name, python_model=str(HERE / code), artifacts=artifacts, code_paths=[str(PACKAGE)],
            signature=signature, input_example=example, pip_requirements=requirements(),
            registered_model_name=registered_model_name, model_type=SERVED_TYPE)


def _stage(weights: Path, folder: Path) -> Path:
    """Copy X.pt and X.json into `folder` as model.pt / model.json: one artifact folder per model, fixed names, so
    an encoder and a decoder that happen to share a file name cannot collide."""
    folder.mkdir(parents=True)
    shutil.copyfile(weights, folder / WEIGHTS)
    shutil.copyfile(weights.with_suffix(".json"), (folder / WEIGHTS).with_suffix(".json"))
    return folder


def requirements() -> list[str]:
    """Pinned to the installed versions, without local tags (`2.13.0+cpu` → `2.13.0`) that an index would not have."""
    return [f"{pkg}=={version(pkg).split('+')[0]}" for pkg in REQUIREMENTS]


def example_audio(seconds: float = 1.0, rate: int = 8000) -> str:
    """A base64 WAV of a quiet 220 Hz tone: a valid request body for the docs and the logged input example."""
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    sf.write(buf, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return b64encode(buf.getvalue())
