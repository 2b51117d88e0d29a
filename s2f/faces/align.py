"""Face alignment for the decoder's training targets: the mean face shape, and each face warped onto it.

Cole et al. (2017) split a face into *landmarks* (its geometry) and a *texture* (its appearance with the geometry
taken out: the face warped so that its landmarks sit on the mean shape). The decoder predicts both and re-warps the
texture onto the landmarks; its targets are made here, with the same TPS warp it uses (`s2f.models.warp`).

Landmarks come from dlib in crop pixels (x, y); everything returned here is in normalized [0, 1] image coordinates,
where pixel index i has its centre at (i + 0.5) / size (the warp's convention).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from s2f.models.warp import tps_warp


def to_normalized(points: np.ndarray | torch.Tensor, size: int) -> np.ndarray | torch.Tensor:
    """Pixel (x, y) of a `size`-pixel image → normalized [0, 1] (pixel centres at (i + 0.5) / size)."""
    return (points + 0.5) / size


def to_pixels(points: np.ndarray | torch.Tensor, size: int) -> np.ndarray | torch.Tensor:
    """Normalized [0, 1] (x, y) → pixel coordinates of a `size`-pixel image (inverse of `to_normalized`)."""
    return points * size - 0.5


def mean_shape(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The typical face shape: (N, 68, 2) landmarks in pixels of `size`-pixel crops → (68, 2) float32 normalized.

    Procrustes-lite: each face is centred on its landmarks' centroid and scaled to unit RMS radius (so where the face
    sits in the crop and how big it is do not blur the mean); the shape is the per-coordinate median of those
    normalised faces (robust to the odd failed landmark fit); it is then put back at the median centroid and median
    scale, so the mean face sits where faces sit in the crops. Rotation is not removed: the crops are upright faces
    and the roll that is left is a few degrees, which the median absorbs.
    Faces with any non-finite landmark are skipped.
    """
    pts = np.asarray(landmarks, np.float64)
    if pts.ndim != 3 or pts.shape[-1] != 2:
        raise ValueError(f"landmarks must be (N, L, 2), got {pts.shape}")
    pts = pts[np.isfinite(pts).all(axis=(1, 2))]
    if len(pts) == 0:
        raise ValueError("no face with finite landmarks to average")
    centre = pts.mean(1, keepdims=True)                                   # (N, 1, 2)
    scale = np.sqrt(((pts - centre) ** 2).sum(-1).mean(1))                # (N,) RMS radius
    unit = (pts - centre) / scale[:, None, None]                          # (N, L, 2)
    shape = np.median(unit, 0) * np.median(scale) + np.median(centre[:, 0], 0)  # (L, 2) pixels
    return to_normalized(shape, size).astype(np.float32)


@torch.no_grad()
def align_faces(images: np.ndarray, landmarks: np.ndarray, mean: np.ndarray, size: int,
                batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Warp each face so its landmarks land on the mean shape: Cole's texture targets, and the landmark targets.

    images: (N, H, W, 3) uint8 crops; landmarks: (N, L, 2) in pixels of those crops; mean: (L, 2) normalized.
    Returns textures (N, 3, size, size) float32 in [0, 1] and the faces' own landmarks normalized (N, L, 2) float32
    (the decoder's landmark target: the geometry the texture is warped back onto).
    The warp samples the crops at their resolution, then the result is resized (antialiased) to `size`. Its spline
    is evaluated every 4 px and upsampled (a 224 crop: 56² points instead of 224²; a mean 0.1/255 from warping
    at every pixel, 3× faster). Batched in torch in chunks of `batch_size` faces to bound memory (the TPS
    evaluates a (points × L) kernel per face).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got {images.shape}")
    n, h, w, _ = images.shape
    pts = torch.as_tensor(np.asarray(landmarks, np.float32))
    if pts.shape[0] != n or pts.shape[-1] != 2:
        raise ValueError(f"landmarks must be (N={n}, L, 2), got {tuple(pts.shape)}")
    norm = (pts + 0.5) / torch.tensor([w, h], dtype=torch.float32)       # (N, L, 2) normalized
    target = torch.as_tensor(np.asarray(mean, np.float32))               # (L, 2)
    textures = []
    for lo in range(0, n, batch_size):
        crop = torch.from_numpy(images[lo:lo + batch_size]).permute(0, 3, 1, 2).float() / 255  # (b, 3, H, W)
        src = norm[lo:lo + batch_size]                                   # (b, L, 2)
        warped = tps_warp(crop, src, target.expand_as(src), field_size=max(2, min(h, w) // 4))  # (b, 3, H, W)
        if (h, w) != (size, size):
            warped = F.interpolate(warped, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        textures.append(warped.clamp(0, 1))
    return torch.cat(textures).numpy(), norm.numpy()
