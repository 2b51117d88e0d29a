"""The composite Speech2Face pyfunc (logged from code by `s2f.serving.log.log_speech2face`).

Request: a DataFrame with a column `audio`, each cell a base64 audio file (WAV/FLAC/OGG/MP3, any rate and channels).
Response: a DataFrame with a column `face`, each cell a base64 PNG of the decoder's image size.
Artifacts: folders `encoder` and `decoder`, each with `model.pt` (weights) and `model.json` (config).
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from s2f.inference import Speech2Face, b64encode, png_bytes
from s2f.serving import artifact_model, request_audio


class Speech2FaceModel(PythonModel):
    def load_context(self, context) -> None:
        self.model = Speech2Face(artifact_model(context.artifacts, "encoder"),
                                 artifact_model(context.artifacts, "decoder"))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        faces = self.model.faces(request_audio(model_input))  # (N, S, S, 3) uint8
        return pd.DataFrame({"face": [b64encode(png_bytes(face)) for face in faces]})


mlflow.models.set_model(Speech2FaceModel())
