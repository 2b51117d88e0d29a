"""Face decoder: face feature → face image.

A first, honest version (a later issue replaces it with Cole et al.'s landmark + texture + warp decoder): a shared FC
layer (`first`, the `f_dec` of the Speech2Face loss), an FC to a 4×4 grid, then transposed convs doubling the size up
to `image_size`, and a sigmoid to RGB in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class FaceDecoderConfig:
    in_dim: int = 128
    hidden: int = 512
    image_size: int = 64
    base_channels: int = 256


class FaceDecoder(nn.Module):
    def __init__(self, config: FaceDecoderConfig):
        super().__init__()
        if config.image_size < 8 or 2 ** round(math.log2(config.image_size)) != config.image_size:
            raise ValueError(f"image_size must be a power of two ≥ 8, got {config.image_size}")
        self.config = config
        self.first = nn.Linear(config.in_dim, config.hidden)
        self.to_grid = nn.Linear(config.hidden, 4 * 4 * config.base_channels)
        ups: list[nn.Module] = []
        channels = config.base_channels
        for _ in range(int(math.log2(config.image_size // 4))):
            out = max(channels // 2, 16)
            ups += [nn.ConvTranspose2d(channels, out, 4, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU(True)]
            channels = out
        ups.append(nn.Conv2d(channels, 3, 1))
        self.up = nn.Sequential(*ups)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """feature: (B, in_dim) → image (B, 3, S, S) in [0, 1]."""
        h = torch.relu(self.first(feature))                       # (B, hidden)
        grid = self.to_grid(h).view(-1, self.config.base_channels, 4, 4)  # (B, C, 4, 4)
        return torch.sigmoid(self.up(torch.relu(grid)))          # (B, 3, S, S)
