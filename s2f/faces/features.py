"""Face-feature backends: a face crop (and its box) → a fixed-size identity feature, plus 68 landmarks.

`dlib` (the default) is dlib's 128-D ResNet face descriptor, weights shipped in `face_recognition_models`, so it runs
offline. `vggface` is the paper's VGG-Face fc7 (4096-D, in torch on the training device, s2f/faces/vggface.py); its weight file
is downloaded by the user (`features.vggface_weights`, see docs/face_backends.md). Each backend also says the range
of descriptor norms the feature-shard expectation suite accepts (`norm_range`).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from s2f.faces import dlib_models
from s2f.faces.detect import FaceBox
from s2f.faces.vggface import VggFaceBackend  # cheap: torch and h5py are imported on the first embed only


class FaceFeatureBackend(Protocol):
    name: str
    dim: int
    norm_range: tuple[float, float]  # descriptor L2 norms outside it mark a degenerate feature (validation)

    def embed(self, crop: np.ndarray, box: FaceBox) -> np.ndarray:
        """(H, W, 3) uint8 crop and the face box inside it → (dim,) float32 feature."""
        ...


class DlibBackend:
    """dlib's ResNet descriptor on the face aligned by its 5-point landmarks (as dlib's own pipeline does)."""

    name = "dlib"
    dim = 128
    norm_range = (1.0, 2.0)  # measured 1.33-1.57 on 33 real clips (s2f/validation.py DLIB_NORM_RANGE)

    def embed(self, crop: np.ndarray, box: FaceBox) -> np.ndarray:
        shape = dlib_models.shape_predictor(5)(crop, box.to_dlib())
        return np.asarray(dlib_models.face_descriptor_net().compute_face_descriptor(crop, shape), np.float32)


BACKENDS: dict[str, type] = {"dlib": DlibBackend, "vggface": VggFaceBackend}


def get_backend(name: str, **options: object) -> FaceFeatureBackend:
    """The backend called `name`, built with its options (vggface: `weights=`, the path of its weight file)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown face-feature backend {name!r}; known: {', '.join(BACKENDS)}")
    return BACKENDS[name](**options)


def landmarks_68(crop: np.ndarray, box: FaceBox) -> np.ndarray:
    """dlib's 68 landmarks (x, y) in crop pixels, float32 (68, 2)."""
    shape = dlib_models.shape_predictor(68)(crop, box.to_dlib())
    return np.array([(p.x, p.y) for p in shape.parts()], np.float32)
