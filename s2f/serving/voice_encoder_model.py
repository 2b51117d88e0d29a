"""The voice encoder alone as a pyfunc (logged from code by `s2f.serving.log.log_voice_encoder`).

Request: a column `audio` of base64 audio files. Response: a column `feature`, each cell the face feature as a list
of floats (the encoder's `out_dim`). Artifact: folder `encoder` with `model.pt` + `model.json`.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from s2f.inference import encode
from s2f.serving import artifact_model, request_audio


class VoiceEncoderModel(PythonModel):
    def load_context(self, context) -> None:
        self.encoder = artifact_model(context.artifacts, "encoder")

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        features = encode(self.encoder, request_audio(model_input))  # (N, D)
        return pd.DataFrame({"feature": [row.tolist() for row in features]})


mlflow.models.set_model(VoiceEncoderModel())
