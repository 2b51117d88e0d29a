"""The Speech2Face voice encoder (Oh et al., CVPR 2019, Table 1), sized by a config.

waveform → spectrogram (B, T, 257, 2) → conv(4×4)-ReLU-BN blocks (max-pooling 2×1 along time only, optional
stride 2 along frequency) → a last conv → average over all of time (→ ReLU → BN in the paper) → flatten
(frequency × channels) → FC-ReLU → FC → face feature. Because time is averaged away, any input length of at least
~1 s gives the same output size.

Table 1 at 6 s (time × frequency × channels; every conv 4×4 with "same" padding):

    input 598×257×2 → conv 64 → conv 64
    → conv 128, pool → conv 128, pool → conv 128, pool → conv 256, pool      time 598 → 299 → 149 → 74 → 37
    → conv 512 → conv 512 (frequency stride 2) → last conv 512 (frequency stride 2, no ReLU/BN)
                                                                              frequency 257 → 129 → 65
    → average over time: 512×65 → ReLU → BN → FC 4096 → ReLU → FC 4096
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from s2f.audio import N_FFT, spectrogram

FREQ_BINS = N_FFT // 2 + 1  # 257


@dataclass(frozen=True)
class ConvBlock:
    channels: int
    time_pool: bool = False   # max-pool 2×1 along time after the block
    freq_stride: int = 1      # stride along frequency of the block's conv


@dataclass(frozen=True)
class VoiceEncoderConfig:
    """Sizes of the encoder. The paper's is `s2f.models.presets.PRESETS["paper"].encoder`; the defaults of the two
    last fields keep checkpoints saved before they existed loading as they were trained."""
    blocks: tuple[ConvBlock, ...]
    last_channels: int = 512
    kernel: int = 4
    hidden: int = 4096
    out_dim: int = 4096
    last_freq_stride: int = 1   # stride along frequency of the last conv (the paper: 2); 1 is the pre-paper layout
    pooled_norm: bool = False   # ReLU → BN after the time average (the paper: True); False is the pre-paper layout


# Table 1: the four 2×1 pools follow the third to sixth convs (128, 128, 128, 256 channels); the last two 512-channel
# convs (the eighth, a block here, and the ninth, `last_*` in the config) halve the frequency axis.
PAPER_BLOCKS = (
    ConvBlock(64), ConvBlock(64),
    ConvBlock(128, time_pool=True), ConvBlock(128, time_pool=True), ConvBlock(128, time_pool=True),
    ConvBlock(256, time_pool=True),
    ConvBlock(512), ConvBlock(512, freq_stride=2),
)


def _same_pad(kernel: int) -> tuple[int, int, int, int]:
    # an even kernel needs asymmetric padding to keep "same" size (left, right, top, bottom)
    return (kernel // 2 - 1, kernel // 2, kernel // 2 - 1, kernel // 2)


def _strided(size: int, stride: int) -> int:
    # output size of a "same"-padded conv: ceil(size / stride)
    return -(-size // stride)


class VoiceEncoder(nn.Module):
    def __init__(self, config: VoiceEncoderConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        channels, freq = 2, FREQ_BINS
        for block in config.blocks:
            layers += [nn.ZeroPad2d(_same_pad(config.kernel)),
                       nn.Conv2d(channels, block.channels, config.kernel, stride=(1, block.freq_stride)),
                       nn.ReLU(inplace=True), nn.BatchNorm2d(block.channels)]
            if block.time_pool:
                layers.append(nn.MaxPool2d(kernel_size=(2, 1)))
            channels, freq = block.channels, _strided(freq, block.freq_stride)
        # the last conv has no ReLU/BN: its output is what gets averaged over time
        layers += [nn.ZeroPad2d(_same_pad(config.kernel)),
                   nn.Conv2d(channels, config.last_channels, config.kernel, stride=(1, config.last_freq_stride))]
        freq = _strided(freq, config.last_freq_stride)
        self.convs = nn.Sequential(*layers)
        # BatchNorm1d over (B, C, F') normalises each channel across the batch and the frequency positions
        self.pooled = (nn.Sequential(nn.ReLU(inplace=True), nn.BatchNorm1d(config.last_channels))
                       if config.pooled_norm else nn.Identity())
        self.head = nn.Sequential(
            nn.Linear(freq * config.last_channels, config.hidden), nn.ReLU(inplace=True),
            nn.Linear(config.hidden, config.out_dim),
        )
        # Face features of different people differ by a few percent around a common mean, so the head predicts
        # standardised deviations and the output is mapped back: v = mean + scale · head(x). Set from the
        # training targets (`set_output_statistics`); saved with the weights.
        self.register_buffer("out_mean", torch.zeros(config.out_dim))
        self.register_buffer("out_scale", torch.ones(config.out_dim))

    @torch.no_grad()
    def set_output_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """The training set's face-feature mean and standard deviation, (out_dim,) each."""
        self.out_mean.copy_(mean)
        self.out_scale.copy_(std.clamp_min(1e-6))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """wave: (B, L) float in [-1, 1] at 16 kHz → (B, out_dim)."""
        return self.forward_spectrogram(spectrogram(wave))

    def forward_spectrogram(self, spec: torch.Tensor) -> torch.Tensor:
        """spec: (B, T, 257, 2) → (B, out_dim)."""
        x = spec.permute(0, 3, 1, 2)  # (B, 2, T, F): channels first, time as height
        x = self.convs(x)             # (B, C, T', F'): T' = T / 2^pools, F' = F / the frequency strides
        x = x.mean(dim=2)             # (B, C, F'): average pooling over all of time
        x = self.pooled(x)            # (B, C, F')
        return self.out_mean + self.out_scale * self.head(x.flatten(1))  # (B, C·F') → (B, out_dim)
