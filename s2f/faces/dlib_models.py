"""Locate and load dlib's pretrained models shipped inside the `face_recognition_models` wheel.

Why: the weights come from a package registry, never from a hub at run time. We find the files without
importing `face_recognition_models` (its import pulls `pkg_resources` only to compute the same path).
Models are cached per process because loading the ResNet descriptor takes about 0.3 s.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import dlib


def models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face_recognition_models is not installed: run the README's set-up command")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


@lru_cache(maxsize=1)
def hog_detector() -> "dlib.fhog_object_detector":
    return dlib.get_frontal_face_detector()


@lru_cache(maxsize=1)
def cnn_detector() -> "dlib.cnn_face_detection_model_v1":
    return dlib.cnn_face_detection_model_v1(str(models_dir() / "mmod_human_face_detector.dat"))


@lru_cache(maxsize=2)
def shape_predictor(points: int) -> "dlib.shape_predictor":
    if points not in (5, 68):
        raise ValueError(f"dlib ships 5- and 68-point landmark models, not {points}")
    return dlib.shape_predictor(str(models_dir() / f"shape_predictor_{points}_face_landmarks.dat"))


@lru_cache(maxsize=1)
def face_descriptor_net() -> "dlib.face_recognition_model_v1":
    return dlib.face_recognition_model_v1(str(models_dir() / "dlib_face_recognition_resnet_model_v1.dat"))
