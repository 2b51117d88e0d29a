"""Generated face images (a voice → face generator's 64 or 128 px output) → Wav2Pix's detection ratio and the face
backend's features, for the generator metrics of s2f/generation_metrics.py.

Why upscale first: dlib's HOG detector scans an 80×80 window, so it cannot find a face smaller than about 80 px,
and a generator's face fills less than its whole frame (see `generated_face_box`): at 64 px it is ~36 px wide.
Images are upscaled bilinearly (PIL, as preprocessing resizes frames) before detection and embedding; this only
makes detection possible, it adds no detail.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from s2f.faces.detect import FaceBox, detect_faces
from s2f.faces.features import FaceFeatureBackend, landmarks_68

DETECT_SIZE = 160      # px: the face (1/1.8 of the frame at margin 0.4) is then ~89 px, just above HOG's 80 px window
EMBED_SIZE = 224       # px: the preprocess crop size, so the face box is exactly where it was in the training crops
CROP_MARGIN = 0.4      # PreprocessParams.crop_margin: the margin the generator's training faces were cut with


def upscale(images: np.ndarray, size: int) -> np.ndarray:
    """(N, S, S, 3) uint8 → (N, size, size, 3) uint8, bilinear (unchanged when S == size)."""
    images = _check_images(images)
    if images.shape[1] == size:
        return images
    return np.stack([np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))
                     for img in images]) if len(images) else np.zeros((0, size, size, 3), np.uint8)


def detection_ratio(images: np.ndarray, upsample_to: int = DETECT_SIZE, min_score: float = 0.0) -> dict:
    """Wav2Pix's detection ratio (Duarte et al. 2019): the share of generated images in which dlib's frontal face
    detector finds a face AND dlib's 68 landmarks can be placed on it.

    images (N, S, S, 3) uint8 are upscaled to `upsample_to` first (module docstring). `min_score` 0.0 is the
    threshold dlib's detector applies when called plainly (`detector(image)`), as Wav2Pix did; preprocessing's 0.5
    guards against clutter in real video frames, which a generated face-only image does not have (a real 224 crop
    shrunk to 64 px scores as low as ~0.5 here). dlib's shape predictor always returns 68 points for a box, so
    "placed" means all 68 lie inside the image: a face the frame cuts off does not count.

    Returns {"detected": k, "images": n, "ratio": k / n} (ratio nan for no images).
    """
    big = upscale(images, upsample_to)
    detected = sum(_has_face(img, min_score) for img in big)
    return {"detected": int(detected), "images": len(big), "ratio": detected / len(big) if len(big) else float("nan")}


def _has_face(image: np.ndarray, min_score: float) -> bool:
    boxes = detect_faces(image, upsample=0, min_score=min_score)
    if not boxes:
        return False
    points = landmarks_68(image, boxes[0])                                     # (68, 2) on the best-scoring face
    size = np.array([image.shape[1], image.shape[0]])
    return bool(((points >= 0) & (points <= size - 1)).all())


def generated_face_box(size: int, margin: float = CROP_MARGIN) -> FaceBox:
    """Where the face sits in a `size` px generated image: the central 1 / (1 + 2·margin) of each side.

    Why: the generator learnt from preprocessing's crops (`crop_face`), which grow the detector's face box by
    `margin` of its side on every side, so the box is the middle 1/1.8 of a crop at margin 0.4 (50..174 of a 224
    crop). A generator that reproduces its training faces puts the face there too, so we use that box instead of
    detecting, which would fail (or drift) exactly on the poor generations a metric must still score.
    """
    side = size / (1 + 2 * margin)
    lo, hi = round((size - side) / 2), round((size + side) / 2)
    return FaceBox(lo, lo, hi, hi, 0.0)


def embed_generated(images: np.ndarray, backend: FaceFeatureBackend, upsample_to: int = EMBED_SIZE,
                    margin: float = CROP_MARGIN) -> np.ndarray:
    """(N, S, S, 3) uint8 generated faces → (N, backend.dim) float32 features of the backend (`get_backend`).

    Each image is upscaled to `upsample_to` (default the 224 px crop size, so image and box match the training
    crops pixel for pixel) and embedded with the face box of `generated_face_box`: no detection (see there).
    """
    big = upscale(images, upsample_to)
    box = generated_face_box(upsample_to, margin)
    out = np.zeros((len(big), backend.dim), np.float32)
    for i, img in enumerate(big):
        out[i] = backend.embed(img, box)
    return out


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2] or images.dtype != np.uint8:
        raise ValueError(f"expected (N, S, S, 3) uint8 images, got {images.shape} {images.dtype}")
    return np.ascontiguousarray(images)
