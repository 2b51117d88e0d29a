"""A GAN family's audio → face pyfunc (logged from code by `s2f.serving.log.log_voice_to_face`), served like the
`speech2face` composite: `mlflow models serve -m models:/wen2019@champion`.

Request: a DataFrame with a column `audio`, each cell a base64 audio file (WAV/FLAC/OGG/MP3, any rate and channels;
the same decoding limits and 4xx reasons as the composite, `s2f.serving.request_audio`).
Response: a DataFrame with a column `face`, each cell a base64 PNG of the family's image size.
Artifact: folder `model` with `model.pt` (weights) and `model.json` (the `VoiceToFace` config naming the family).
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from s2f.inference import GanFaces, b64encode, png_bytes
from s2f.serving import artifact_model, request_audio


class VoiceToFaceModel(PythonModel):
    def load_context(self, context) -> None:
        self.model = GanFaces(artifact_model(context.artifacts, "model"))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        faces = self.model.faces(request_audio(model_input))  # (N, S, S, 3) uint8
        return pd.DataFrame({"face": [b64encode(png_bytes(face)) for face in faces]})


mlflow.models.set_model(VoiceToFaceModel())
