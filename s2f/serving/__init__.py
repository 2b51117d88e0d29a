"""MLflow pyfunc models of Speech2Face, logged as code (MLflow 3 "models from code"), and what they share.

Why from code: a pyfunc logged as a Python object is cloudpickled, and loading it runs whatever the pickle says. Here
the logged model is the source of `speech2face_model.py` (or the encoder/decoder one) plus this package as
`code_paths`; its weights travel as `.pt` + `.json` artifacts that `s2f.io.checkpoints.load_model` rebuilds with
`torch.load(weights_only=True)`. Nothing executable is deserialized.

Bad input is raised as an `MlflowException` with `INVALID_PARAMETER_VALUE`: the scoring server answers it with HTTP
400 and a JSON body carrying our message and a machine-readable `reason` (any other exception would come back as a
400 with a generic message, hiding why).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from s2f.inference import AudioInputError, b64decode_audio, decode_audio, default_device
from s2f.io.checkpoints import load_model

WEIGHTS = "model.pt"   # name of the weights inside each artifact folder; its config is model.json beside it


def invalid_input(message: str, reason: str) -> MlflowException:
    """An exception the scoring server turns into HTTP 400 with `{"message": ..., "reason": ...}`."""
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE, reason=reason)


def artifact_model(artifacts: dict[str, str], key: str) -> torch.nn.Module:
    """The model saved (weights + JSON config) in the artifact folder `key`, on the GPU when there is one."""
    return load_model(Path(artifacts[key]) / WEIGHTS, default_device())


def request_column(model_input: pd.DataFrame, column: str) -> pd.Series:
    if column not in model_input.columns:
        raise invalid_input(f"the request needs a column {column!r}, got {list(model_input.columns)}", "bad_request")
    return model_input[column]


def request_audio(model_input: pd.DataFrame) -> list[np.ndarray]:
    """Column `audio` (base64 audio files) → 16 kHz mono waveforms; the first bad row fails the request, named."""
    waves = []
    for i, text in enumerate(request_column(model_input, "audio")):
        try:
            waves.append(decode_audio(b64decode_audio(text, f"row {i}"), f"row {i}"))
        except AudioInputError as err:
            raise invalid_input(str(err), err.reason) from None
    return waves
