"""Render a demo speaker's face: a real photo (`skimage.data.astronaut()`) warped and tinted by their traits.

Why a warped photo rather than a drawn face: dlib's HOG detector finds no face in simple drawings, while a warped real
face is still detected, so the demo runs the same detection code path as real data. The warp is a thin-plate spline
that moves dlib's 68 landmarks of the photo; the tint is applied under a soft mask of the face so that skin, not
background, changes colour.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage
from skimage import data as skdata
from skimage.draw import polygon

from s2f.demo.traits import SpeakerTraits
from s2f.faces import dlib_models
from s2f.faces.detect import detect_faces

JAW, BROWS, NOSE, EYES, MOUTH = slice(0, 17), slice(17, 27), slice(27, 36), slice(36, 48), slice(48, 68)
LEFT_EYE, RIGHT_EYE = slice(36, 42), slice(42, 48)


@lru_cache(maxsize=1)
def base_face() -> tuple[np.ndarray, np.ndarray]:
    """The photo cut to a square around its face, and the face's 68 landmarks (x, y) in that square."""
    image = skdata.astronaut()
    box = detect_faces(image, upsample=0, min_score=0.5)[0]
    side = int(box.width * 2.6)
    cx, cy = (box.left + box.right) // 2, (box.top + box.bottom) // 2 + box.height // 10
    x0, y0 = max(cx - side // 2, 0), max(cy - side // 2, 0)
    square = np.ascontiguousarray(image[y0:y0 + side, x0:x0 + side])
    shape = dlib_models.shape_predictor(68)(image, box.to_dlib())
    points = np.array([(p.x - x0, p.y - y0) for p in shape.parts()], dtype=np.float64)
    return square, points


def moved_landmarks(points: np.ndarray, traits: SpeakerTraits) -> np.ndarray:
    """Where the traits move each of the 68 landmarks (pixels of the base square)."""
    p = points.copy()
    centre = p[NOSE].mean(axis=0)
    face_w = np.ptp(p[JAW, 0])
    face_h = np.ptp(p[:, 1])
    # size: wider and longer lower face (jaw and chin), longer nose
    lower = p[:, 1] > centre[1]
    p[lower, 0] = centre[0] + (p[lower, 0] - centre[0]) * (1 + 0.07 * traits.size)
    p[lower, 1] = centre[1] + (p[lower, 1] - centre[1]) * (1 + 0.08 * traits.size)
    p[NOSE, 1] += np.linspace(0, 0.03 * face_h * traits.size, 9)
    # shape: eye spacing and mouth width
    for eye, sign in ((LEFT_EYE, -1), (RIGHT_EYE, 1)):
        p[eye, 0] += sign * 0.035 * face_w * traits.shape
    mouth_c = p[MOUTH].mean(axis=0)
    p[MOUTH, 0] = mouth_c[0] + (p[MOUTH, 0] - mouth_c[0]) * (1 + 0.12 * traits.shape)
    # face_only: brow height and nose width, which no voice feature reveals
    p[BROWS, 1] -= 0.03 * face_h * traits.face_only
    nose_c = p[NOSE].mean(axis=0)
    p[NOSE, 0] = nose_c[0] + (p[NOSE, 0] - nose_c[0]) * (1 + 0.15 * traits.face_only)
    return p


def _tps_backward_map(target: np.ndarray, source: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Thin-plate spline sending each output pixel (near `target` points) to its source pixel (near `source`)."""
    n = len(target)
    def kernel(r2: np.ndarray) -> np.ndarray:
        return np.where(r2 > 0, r2 * np.log(np.maximum(r2, 1e-12)), 0.0)
    k = kernel(((target[:, None, :] - target[None, :, :]) ** 2).sum(-1))
    p = np.hstack([np.ones((n, 1)), target])
    system = np.zeros((n + 3, n + 3))
    system[:n, :n], system[:n, n:], system[n:, :n] = k, p, p.T
    weights = np.linalg.solve(system, np.vstack([source, np.zeros((3, 2))]))  # (n+3, 2)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float64)  # (H*W, 2) as (x, y)
    u = kernel(((grid[:, None, :] - target[None, :, :]) ** 2).sum(-1))  # (H*W, n)
    mapped = u @ weights[:n] + weights[n] + grid @ weights[n + 1:]
    return mapped.reshape(shape[0], shape[1], 2)


def _border_anchors(side: int, count: int = 6) -> np.ndarray:
    ticks = np.linspace(0, side - 1, count)
    edges = [(t, 0) for t in ticks] + [(t, side - 1) for t in ticks] + [(0, t) for t in ticks[1:-1]] + \
            [(side - 1, t) for t in ticks[1:-1]]
    return np.array(edges, dtype=np.float64)


def render_face(traits: SpeakerTraits) -> np.ndarray:
    """The speaker's face as an RGB uint8 square image (same size as the base square)."""
    square, points = base_face()
    side = square.shape[0]
    target = np.vstack([moved_landmarks(points, traits), _border_anchors(side)])
    source = np.vstack([points, _border_anchors(side)])
    mapping = _tps_backward_map(target, source, square.shape[:2])
    coords = [mapping[..., 1], mapping[..., 0]]
    warped = np.stack([ndimage.map_coordinates(square[..., c].astype(np.float32), coords, order=1, mode="nearest")
                       for c in range(3)], axis=-1)
    return _tint_skin(warped, target[:68], traits.tone)


def _tint_skin(image: np.ndarray, landmarks: np.ndarray, tone: float) -> np.ndarray:
    """Darken/warm (tone > 0) or lighten (tone < 0) the skin under a soft mask around the landmarks."""
    mask = np.zeros(image.shape[:2], dtype=np.float32)
    hull = np.vstack([landmarks[JAW], landmarks[BROWS][::-1] - [0, 25]])
    rr, cc = polygon(hull[:, 1], hull[:, 0], mask.shape)
    mask[rr, cc] = 1.0
    mask = ndimage.gaussian_filter(mask, sigma=8)[..., None]
    gain = np.array([1.0 - 0.10 * tone, 1.0 - 0.16 * tone, 1.0 - 0.22 * tone], dtype=np.float32)
    tinted = image * (1 - mask) + image * gain * mask
    return np.clip(tinted, 0, 255).astype(np.uint8)
