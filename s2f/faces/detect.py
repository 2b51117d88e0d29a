"""Find the speaker's face in a frame and cut the 224×224 crop every later stage works on."""

from __future__ import annotations

from dataclasses import dataclass

import dlib
import numpy as np
from PIL import Image

from s2f.faces import dlib_models


@dataclass(frozen=True)
class FaceBox:
    """A face rectangle in pixel coordinates of the image it was found in, with the detector's score."""

    left: int
    top: int
    right: int
    bottom: int
    score: float

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def to_dlib(self) -> "dlib.rectangle":
        return dlib.rectangle(self.left, self.top, self.right, self.bottom)


def detect_faces(image: np.ndarray, upsample: int = 0, min_score: float = 0.5, kind: str = "hog") -> list[FaceBox]:
    """All faces the detector finds with a score of at least `min_score`, best first.

    Why a score threshold: on real photos upsampling adds low-score false positives (dlib's HOG scores a real face
    above ~1 and clutter around 0.1), so the threshold, not the upsampling, decides what is a face. `kind="cnn"`
    is dlib's MMOD CNN: it also finds turned heads, at about 2 s per frame on a CPU.
    """
    image = np.ascontiguousarray(image)
    if kind == "cnn":
        found = [(d.rect, d.confidence) for d in dlib_models.cnn_detector()(image, upsample)]
    elif kind == "hog":
        rects, scores, _ = dlib_models.hog_detector().run(image, upsample, min_score)
        found = list(zip(rects, scores))
    else:
        raise ValueError(f"unknown face detector {kind!r}: use 'hog' or 'cnn'")
    boxes = [FaceBox(r.left(), r.top(), r.right(), r.bottom(), float(s)) for r, s in found if s >= min_score]
    return sorted(boxes, key=lambda b: b.score, reverse=True)


def largest_face(boxes: list[FaceBox]) -> FaceBox | None:
    return max(boxes, key=lambda b: b.width * b.height, default=None)


def face_at(boxes: list[FaceBox], x: float, y: float) -> FaceBox | None:
    """The face at pixel (x, y): the box containing it, else the nearest whose centre is within one face width.

    Why: AVSpeech gives the speaker's face position for each segment; when several people are on screen, that
    point, not the size, says which face goes with the voice.
    """
    def distance(b: FaceBox) -> float:
        return float(np.hypot((b.left + b.right) / 2 - x, (b.top + b.bottom) / 2 - y))

    inside = [b for b in boxes if b.left <= x <= b.right and b.top <= y <= b.bottom]
    if inside:
        return min(inside, key=distance)
    near = [b for b in boxes if distance(b) <= max(b.width, b.height)]
    return min(near, key=distance, default=None)


def is_ambiguous(boxes: list[FaceBox], second_face_ratio: float) -> bool:
    """True when a second face is at least `second_face_ratio` of the largest one's area: whose voice is it?"""
    areas = sorted((b.width * b.height for b in boxes), reverse=True)
    return len(areas) > 1 and areas[1] >= second_face_ratio * areas[0]


def crop_face(image: np.ndarray, box: FaceBox, size: int = 224, margin: float = 0.4) -> tuple[np.ndarray, FaceBox]:
    """A square `size`×`size` crop centred on the face, the box grown by `margin` of its side on every side.

    Returns the crop and the face box in crop coordinates (the features stage needs it to place landmarks).
    Parts of the square outside the frame are filled with black rather than shifting the face off-centre.
    """
    side = max(box.width, box.height) * (1 + 2 * margin)
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    x0, y0 = cx - side / 2, cy - side / 2
    pil = Image.fromarray(image)
    crop = pil.transform((size, size), Image.Transform.EXTENT, (x0, y0, x0 + side, y0 + side),
                         resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))
    scale = size / side
    inner = FaceBox(round((box.left - x0) * scale), round((box.top - y0) * scale),
                    round((box.right - x0) * scale), round((box.bottom - y0) * scale), box.score)
    return np.asarray(crop), inner
