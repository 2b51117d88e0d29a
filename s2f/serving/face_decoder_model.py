"""The face decoder alone as a pyfunc (logged from code by `s2f.serving.log.log_face_decoder`).

Request: a column `feature`, each cell a face feature (a list of the decoder's `in_dim` floats). Response: a column
`face` of base64 PNGs. Artifact: folder `decoder` with `model.pt` + `model.json`.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from s2f.inference import b64encode, decode, png_bytes
from s2f.serving import artifact_model, invalid_input, request_column


class FaceDecoderModel(PythonModel):
    def load_context(self, context) -> None:
        self.decoder = artifact_model(context.artifacts, "decoder")

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        faces = decode(self.decoder, self.features(model_input))  # (N, S, S, 3) uint8
        return pd.DataFrame({"face": [b64encode(png_bytes(face)) for face in faces]})

    def features(self, model_input: pd.DataFrame) -> np.ndarray:
        """Column `feature` → (N, in_dim) float32; a row of the wrong size or with NaN fails the request, named."""
        dim = self.decoder.config.in_dim
        rows = []
        for i, cell in enumerate(request_column(model_input, "feature")):
            try:
                row = np.asarray(cell if cell is not None else [], np.float32).ravel()
            except (TypeError, ValueError):
                raise invalid_input(f"row {i}: bad_feature (not a list of numbers)", "bad_feature") from None
            if row.shape != (dim,) or not np.isfinite(row).all():
                raise invalid_input(f"row {i}: bad_feature (need {dim} finite numbers, got {row.size})",
                                    "bad_feature")
            rows.append(row)
        return np.stack(rows) if rows else np.zeros((0, dim), np.float32)


mlflow.models.set_model(FaceDecoderModel())
