"""Face decoder after Cole et al. 2017 ("Synthesizing normalized faces from facial identity features").

A face feature is decoded into the two things a face is made of, then they are put together:

    feature ─ first (FC: f_dec of the Speech2Face loss) ─ ReLU ─┬─ landmark MLP → 68 (x, y) = mean shape + offsets
                                                                └─ texture CNN → the face on the mean shape (RGB)
    image = tps_warp(texture, mean shape → landmarks)

Why the split: averaging textures of aligned faces, or landmark positions, is meaningful, while averaging raw
face images blurs them; so each half is learnt with a loss that fits it (L1 on textures, MSE on landmarks, targets from
`s2f.faces.align`), and a differentiable warp makes the image. Paper size: in_dim 4096 (VGG-Face fc7), hidden 1024,
a 14×14×256 grid, four ×2 transposed convs → 224 px. The demo default is 64 px from an 8×8 grid.

Also here: `FeatureProxy`, a small CNN (image → face feature) that stands in for the non-differentiable feature
extractor (dlib) in the decoder's identity-consistency loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from s2f.models.warp import tps_warp


@dataclass(frozen=True)
class FaceDecoderConfig:
    in_dim: int = 128             # face feature size (dlib 128; VGG-Face fc7 4096)
    hidden: int = 512             # the shared FC `first` (paper 1024)
    image_size: int = 64          # output S×S; must be texture_grid · 2^k (paper 224)
    texture_grid: int = 8         # spatial size the texture CNN starts from (paper 14)
    texture_channels: int = 256   # channels at that grid; halved by every ×2 upsampling, at least 32
    landmark_hidden: int = 256
    n_landmarks: int = 68
    warp_field: int | None = None  # the TPS is evaluated on this many × this many points, then upsampled (None:
                                   # at every pixel); the spline is smooth, and its kernel is most of a step's cost


class DecodedFace(NamedTuple):
    image: torch.Tensor       # (B, 3, S, S) in [0, 1]: the texture warped onto the landmarks
    texture: torch.Tensor     # (B, 3, S, S) in [0, 1]: the face on the mean shape
    landmarks: torch.Tensor   # (B, L, 2) normalized (x, y)


def upsampling_steps(image_size: int, grid: int) -> int:
    """k with image_size = grid · 2^k, or a ValueError saying what would fit."""
    k = round(math.log2(image_size / grid)) if image_size >= grid > 0 else -1
    if k < 0 or grid * 2 ** k != image_size:
        raise ValueError(f"image_size must be texture_grid × 2^k: got image_size={image_size}, texture_grid={grid} "
                         f"(e.g. 64 = 8 × 2^3, 224 = 14 × 2^4)")
    return k


def default_shape(n: int) -> torch.Tensor:
    """A placeholder mean shape: n points spread evenly over a disc in the middle of the image (a sunflower spiral).

    Only there so the warp is well posed before `set_mean_shape` (coincident points would make the TPS singular);
    training should always set the data's mean shape.
    """
    i = torch.arange(n, dtype=torch.float32) + 0.5
    r = 0.3 * torch.sqrt(i / n)
    theta = i * math.pi * (3 - math.sqrt(5))                                  # the golden angle
    return torch.stack([0.5 + r * torch.cos(theta), 0.5 + r * torch.sin(theta)], -1)  # (n, 2)


class FaceDecoder(nn.Module):
    def __init__(self, config: FaceDecoderConfig):
        super().__init__()
        c = config
        if min(c.in_dim, c.hidden, c.texture_channels, c.landmark_hidden, c.n_landmarks) < 1:
            raise ValueError(f"all FaceDecoderConfig sizes must be positive, got {c}")
        if c.warp_field is not None and c.warp_field < 2:  # one point would warp the whole image by one offset
            raise ValueError(f"FaceDecoderConfig.warp_field must be at least 2 (or None: exact), got {c.warp_field}")
        steps = upsampling_steps(c.image_size, c.texture_grid)
        self.config = config
        self.first = nn.Linear(c.in_dim, c.hidden)                            # f_dec of the Speech2Face loss
        # Landmarks as offsets from the mean shape; the last layer starts at zero, so training starts from the mean
        # face and an identity warp (image == texture).
        self.landmarks = nn.Sequential(nn.Linear(c.hidden, c.landmark_hidden), nn.ReLU(True),
                                       nn.Linear(c.landmark_hidden, c.n_landmarks * 2))
        nn.init.zeros_(self.landmarks[-1].weight)
        nn.init.zeros_(self.landmarks[-1].bias)
        self.register_buffer("mean_landmarks", default_shape(c.n_landmarks))  # (L, 2), saved with the weights
        self.to_grid = nn.Linear(c.hidden, c.texture_grid ** 2 * c.texture_channels)
        ups: list[nn.Module] = []
        channels = c.texture_channels
        for _ in range(steps):
            out = max(channels // 2, 32)
            ups += [nn.ConvTranspose2d(channels, out, 4, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU(True)]
            channels = out
        ups.append(nn.Conv2d(channels, 3, 1))
        self.texture = nn.Sequential(*ups)

    @torch.no_grad()
    def set_mean_shape(self, mean: np.ndarray | torch.Tensor) -> None:
        """Set the mean face shape (L, 2), normalized [0, 1] (from `s2f.faces.align.mean_shape`)."""
        mean = torch.as_tensor(mean, dtype=self.mean_landmarks.dtype)
        if mean.shape != self.mean_landmarks.shape:
            raise ValueError(f"mean shape must be {tuple(self.mean_landmarks.shape)}, got {tuple(mean.shape)}")
        if not torch.isfinite(mean).all() or mean.min() < 0 or mean.max() > 1:
            raise ValueError("mean shape must be finite normalized coordinates in [0, 1] (not pixels)")
        self.mean_landmarks.copy_(mean)

    def decode(self, feature: torch.Tensor) -> DecodedFace:
        """feature (B, in_dim) → DecodedFace(image, texture, landmarks)."""
        c = self.config
        B = feature.shape[0]
        h = torch.relu(self.first(feature))                                   # (B, hidden)
        mean = self.mean_landmarks.expand(B, -1, -1)                          # (B, L, 2)
        landmarks = mean + self.landmarks(h).view(B, c.n_landmarks, 2)        # (B, L, 2)
        grid = self.to_grid(h).view(B, c.texture_channels, c.texture_grid, c.texture_grid)  # (B, C, g, g)
        texture = torch.sigmoid(self.texture(torch.relu(grid)))               # (B, 3, S, S)
        image = tps_warp(texture, mean, landmarks, field_size=c.warp_field)   # (B, 3, S, S)
        return DecodedFace(image, texture, landmarks)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """feature (B, in_dim) → image (B, 3, S, S) in [0, 1]."""
        return self.decode(feature).image


@dataclass(frozen=True)
class DecoderLossWeights:
    texture: float = 1.0
    # Landmark MSE is in normalized units, so it is small: an RMS error of 1.5 % of the image (1 px at 64, 3.4 px at
    # 224) costs 100 · 0.015² ≈ 0.02, about a third of what a fair texture L1 (~0.06) costs; at weight 1 the
    # landmarks would be ignored.
    landmarks: float = 100.0
    identity: float = 0.1


def decoder_loss(decoded: DecodedFace, texture_target: torch.Tensor, landmarks_target: torch.Tensor,
                 weights: DecoderLossWeights = DecoderLossWeights(),
                 identity: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 feature: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Cole et al.'s decoder loss: {texture_l1, landmark_mse, [identity], total}.

    texture_l1: L1 between predicted and aligned texture (B, 3, S, S); landmark_mse: MSE of the normalized landmarks
    (B, L, 2). identity (only with an `identity` model, image → feature, e.g. a frozen `FeatureProxy`): mean of
    1 − cos(identity(decoded.image), feature), so the *warped* image must still read as the same person.
    """
    terms = {"texture_l1": (decoded.texture - texture_target).abs().mean(),
             "landmark_mse": (decoded.landmarks - landmarks_target).pow(2).mean()}
    total = weights.texture * terms["texture_l1"] + weights.landmarks * terms["landmark_mse"]
    if identity is not None:
        if feature is None:
            raise ValueError("the identity term needs the input `feature` to compare with")
        terms["identity"] = (1 - F.cosine_similarity(identity(decoded.image), feature, dim=-1)).mean()
        total = total + weights.identity * terms["identity"]
    terms["total"] = total
    return terms


@dataclass(frozen=True)
class FeatureProxyConfig:
    image_size: int = 64
    out_dim: int = 128
    channels: int = 32        # after the first conv; doubled by every stride-2 conv, at most 8× this


class FeatureProxy(nn.Module):
    """A small CNN image (B, 3, S, S) in [0, 1] → face feature (B, out_dim): a differentiable stand-in for dlib.

    Trained (by the caller) to regress the true crops' features, then frozen and passed as `identity` to
    `decoder_loss`. GroupNorm rather than BatchNorm: the proxy behaves the same in train and eval mode, so freezing it
    cannot be undone by a stray `.train()`.
    """

    def __init__(self, config: FeatureProxyConfig):
        super().__init__()
        if config.image_size < 8 or config.out_dim < 1 or config.channels < 1:
            raise ValueError(f"FeatureProxyConfig needs image_size ≥ 8 and positive sizes, got {config}")
        self.config = config
        layers: list[nn.Module] = []
        c_in, c_out, size = 3, config.channels, config.image_size
        while size > 4:                                                       # stride 2 down to ~4×4
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(1, c_out), nn.ReLU(True)]
            c_in, c_out, size = c_out, min(c_out * 2, config.channels * 8), (size + 1) // 2
        self.convs = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, config.out_dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h = self.convs(image * 2 - 1)                                         # (B, C, ~4, ~4)
        return self.head(h.mean((2, 3)))                                      # (B, out_dim)
