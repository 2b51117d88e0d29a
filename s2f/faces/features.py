"""Face-feature backends: a face crop (and its box) → a fixed-size identity feature, plus 68 landmarks.

`dlib` (the default) is dlib's 128-D ResNet face descriptor, weights shipped in `face_recognition_models`, so it runs
offline. The paper's VGG-Face (fc7, 4096-D) backend joins behind the same interface in a later issue.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from s2f.faces import dlib_models
from s2f.faces.detect import FaceBox


class FaceFeatureBackend(Protocol):
    name: str
    dim: int

    def embed(self, crop: np.ndarray, box: FaceBox) -> np.ndarray:
        """(H, W, 3) uint8 crop and the face box inside it → (dim,) float32 feature."""
        ...


class DlibBackend:
    """dlib's ResNet descriptor on the face aligned by its 5-point landmarks (as dlib's own pipeline does)."""

    name = "dlib"
    dim = 128

    def embed(self, crop: np.ndarray, box: FaceBox) -> np.ndarray:
        shape = dlib_models.shape_predictor(5)(crop, box.to_dlib())
        return np.asarray(dlib_models.face_descriptor_net().compute_face_descriptor(crop, shape), np.float32)


BACKENDS: dict[str, type] = {"dlib": DlibBackend}


def get_backend(name: str) -> FaceFeatureBackend:
    try:
        return BACKENDS[name]()
    except KeyError:
        raise ValueError(f"unknown face-feature backend {name!r}; known: {', '.join(BACKENDS)}") from None


def landmarks_68(crop: np.ndarray, box: FaceBox) -> np.ndarray:
    """dlib's 68 landmarks (x, y) in crop pixels, float32 (68, 2)."""
    shape = dlib_models.shape_predictor(68)(crop, box.to_dlib())
    return np.array([(p.x, p.y) for p in shape.parts()], np.float32)
