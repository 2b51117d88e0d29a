"""Craniofacial measurements from dlib's 68 landmarks, as in Speech2Face's Sec. 4 (Table 3 / Fig. 7).

The paper measures anthropometric distances and ratios (Farkas-style: nose width al–al, nose height n–sn, the nasal
index, upper lip height sn–sto, ...) on landmarks of the face reconstructed from the voice and of the face
reconstructed from the true face feature, and reports their Pearson correlation over the test set. The paper's
landmarks came from DEST; we use dlib's 68-point predictor, so each measure below is the closest one those 68 points
allow (dlib has no zygion, gonion or pupil: the jaw contour and the eye centres stand in for them).

Every measure is scale-invariant: a distance divided by the inter-ocular distance (IOD, between the two eye centres =
means of points 36–41 and 42–47), or a ratio of two distances. So the same face measured in a 64 px decode and in a
224 px photo gives the same number, and all are invariant to translation, rotation and scale of the landmarks.

dlib's 68 points (0-based; "right" is the subject's right = image left in a frontal face):
    0–16 jaw contour (8 = chin, gnathion)         17–21 right brow, 22–26 left brow (19, 24 = brow tops)
    27–30 nose bridge (27 = nasion, 30 = tip)     31–35 lower nose (31, 35 = alae; 33 = subnasale)
    36–41 right eye (36 outer, 39 inner corner)   42–47 left eye (42 inner, 45 outer corner)
    48–59 outer lips (48, 54 = cheilion corners; 50, 52 = crista philtri; 51 = labrale superius; 57 = labrale inf.)
    60–67 inner lips (62 / 66 = upper / lower inner midpoints; stomion = their mean)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from s2f.faces.detect import FaceBox
from s2f.faces.features import landmarks_68
from s2f.metrics import pearson_r

Point = int | tuple[int, ...]          # a landmark index, or several whose mean is the point
RIGHT_EYE, LEFT_EYE = tuple(range(36, 42)), tuple(range(42, 48))
STOMION = (62, 66)
LANDMARK_SIZE = 224                    # dlib's predictor runs on faces this big (it was trained on ~200 px faces)


def _at(lm: np.ndarray, p: Point) -> np.ndarray:
    """(N, 68, 2) → (N, 2): one landmark, or the mean of several."""
    return lm[:, list(p)].mean(axis=1) if isinstance(p, tuple) else lm[:, p]


def _dist(lm: np.ndarray, a: Point, b: Point) -> np.ndarray:
    return np.linalg.norm(_at(lm, a) - _at(lm, b), axis=-1)   # (N,)


def interocular(lm: np.ndarray) -> np.ndarray:
    """(N,) distance between the eye centres: the unit every length is divided by."""
    return _dist(lm, RIGHT_EYE, LEFT_EYE)


def _relative(*pairs: tuple[Point, Point]) -> Callable[[np.ndarray], np.ndarray]:
    """A length in IODs: the mean over `pairs` (left and right sides of a bilateral measure)."""
    def measure(lm: np.ndarray) -> np.ndarray:
        return np.mean([_dist(lm, a, b) for a, b in pairs], axis=0) / np.maximum(interocular(lm), 1e-9)
    return measure


def _ratio(num: tuple[Point, Point], den: tuple[Point, Point]) -> Callable[[np.ndarray], np.ndarray]:
    def measure(lm: np.ndarray) -> np.ndarray:
        return _dist(lm, *num) / np.maximum(_dist(lm, *den), 1e-9)
    return measure


# name → (N, 68, 2) landmarks → (N,) measure. Farkas' landmark names, then the dlib points used.
MEASUREMENTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "face_width": _relative((0, 16)),                       # zy–zy (bizygomatic) ≈ jaw contour ends 0–16
    "jaw_width": _relative((4, 12)),                        # go–go (bigonial) ≈ jaw contour 4–12
    "face_height": _relative((27, 8)),                      # n–gn: nasion 27 to chin 8
    "lower_face_height": _relative((33, 8)),                # sn–gn: subnasale 33 to chin 8
    "nose_height": _relative((27, 33)),                     # n–sn: nasion 27 to subnasale 33
    "nose_width": _relative((31, 35)),                      # al–al: alae 31–35
    "nasal_index": _ratio((31, 35), (27, 33)),              # al–al / n–sn (the paper's strongest correlation)
    "mouth_width": _relative((48, 54)),                     # ch–ch: mouth corners 48–54
    "mouth_face_width_ratio": _ratio((48, 54), (0, 16)),    # ch–ch / zy–zy
    "upper_lip_height": _relative((33, STOMION)),           # sn–sto: subnasale 33 to stomion (62+66)/2
    "lateral_upper_lip_height": _relative((31, 50), (35, 52)),  # sbal–cph, both sides: ala base to philtrum ridge
    "upper_vermilion_height": _relative((51, STOMION)),     # ls–sto: upper lip's red part, 51 to stomion
    "lower_vermilion_height": _relative((STOMION, 57)),     # sto–li: lower lip's red part, stomion to 57
    "eye_distance": _relative((39, 42)),                    # en–en (intercanthal width): inner corners 39–42
    "biocular_width": _relative((36, 45)),                  # ex–ex: outer eye corners 36–45
    "eye_width": _relative((36, 39), (42, 45)),             # ex–en, both eyes
    "brow_eye_height": _relative((19, (37, 38)), (24, (43, 44))),  # brow top to upper-lid middle, both sides
}


def measure(landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """(N, 68, 2) landmarks → {measurement name: (N,) values}."""
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"expected (N, 68, 2) landmarks, got {lm.shape}")
    return {name: fn(lm) for name, fn in MEASUREMENTS.items()}


def canonical_box(size: int, margin: float = 0.4) -> FaceBox:
    """The face box that `crop_face(..., margin)` leaves a face in, in a `size`×`size` crop.

    Why this box: dlib's predictor needs a face box shaped like its detector's. Preprocessing cuts every training face
    as the detector's box grown by `margin` of its side on each side and centred, so a decoder trained on those crops
    draws its canonical face where that box was: the centred square spanning [m, 1 + m] / (1 + 2m) of the image
    (for m = 0.4: pixels 50–174 of 224). Pass the preprocess `crop_margin` the decoder's training faces were cut with.
    """
    lo, hi = margin / (1 + 2 * margin) * size, (1 + margin) / (1 + 2 * margin) * size
    return FaceBox(round(lo), round(lo), round(hi), round(hi), 1.0)


def landmarks_of_faces(images: np.ndarray, boxes: np.ndarray | None = None, margin: float = 0.4) -> np.ndarray:
    """dlib's 68 landmarks of each face image, in that image's pixel coordinates: (N, H, W, 3) uint8 → (N, 68, 2).

    Each image is resized to 224×224 first (a 64 px decode is too small for the predictor), and the predictor is run in
    the face box: `boxes` (N, 4) left, top, right, bottom in the input's pixels (e.g. a preprocessed shard's
    `face_box` for real crops), or, when None, the fixed `canonical_box(224, margin)` for decoded faces, which are
    canonical and need no detection (a detector could also miss a blurry decode, dropping it from the statistics).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 3) uint8 images, got {images.shape} {images.dtype}")
    n, h, w, _ = images.shape
    sx, sy = LANDMARK_SIZE / w, LANDMARK_SIZE / h
    out = np.empty((n, 68, 2), np.float32)
    for i, image in enumerate(images):
        if (h, w) != (LANDMARK_SIZE, LANDMARK_SIZE):
            image = np.asarray(Image.fromarray(image).resize((LANDMARK_SIZE, LANDMARK_SIZE), Image.Resampling.BICUBIC))
        if boxes is None:
            box = canonical_box(LANDMARK_SIZE, margin)
        else:
            left, top, right, bottom = np.asarray(boxes[i], np.float64) * (sx, sy, sx, sy)
            box = FaceBox(round(left), round(top), round(right), round(bottom), 1.0)
        out[i] = landmarks_68(np.ascontiguousarray(image), box)
    # dlib's integer point (x, y) is a pixel centre: map through centres so a resize round-trips without drift
    return ((out + 0.5) / (sx, sy) - 0.5).astype(np.float32)


def craniofacial_correlation(reference: np.ndarray, decoded: np.ndarray) -> dict[str, float]:
    """Pearson r between the two faces' values, per measurement, over N paired faces (nan where not measurable)."""
    if reference.shape != decoded.shape:
        raise ValueError(f"paired landmarks must have the same shape, got {reference.shape} and {decoded.shape}")
    ref, dec = measure(reference), measure(decoded)
    return {name: pearson_r(ref[name], dec[name]) for name in MEASUREMENTS}
