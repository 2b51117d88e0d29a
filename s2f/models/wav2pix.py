"""Wav2Pix (Duarte et al., ICASSP 2019): a conditional GAN that draws a face from one second of raw speech.

    wave (B, 16000) ─ pre-emphasis ─ strided Conv1d stack (SEGAN) ─ FC ─ e (B, 128) ─┬─ classifier → speaker logits
                                                                                   └─ generator → face (B, 3, S, S)
    (face, e) ─ strided Conv2d stack → (B, C, 4, 4) ‖ e replicated over 4×4 ─ conv 4×4 → score (B,)

Unlike the Speech2Face pipeline (`voice_encoder` + `face_decoder`), nothing here is pretrained: the speech encoder,
the identity classifier and the generator are trained end to end by the generator's loss, and the discriminator by
its own (`s2f.training.wav2pix`). The generator gets no noise vector z; dropout on the embedding, active in training
only, is its noise, as in pix2pix.

Encoder at 1 s (16000 samples; every conv kernel 15, stride 4, padding 7, BN + LeakyReLU 0.3 after it):

    time     16000 → 4000 → 1000 → 250 → 63 → 16 → 4
    channels     1 →   16 →   32 → 128 → 256 → 512 → 1024   → flatten 4096 → FC 256 → FC 128

Generator (64 px): e → dropout 0.5 → FC → 4×4×1024 → ConvT 8×8×512 → 16×16×256 → 32×32×128 → 64×64×3 → tanh;
128 px adds one more ConvT (…→ 64×64×64 → 128×128×3). Discriminator (64 px): 64×64×3 → 32×32×64 → 16×16×128
→ 8×8×256 → 4×4×512 ‖ e → 64 replicated → 4×4×576 → conv 4×4 → 1×1 score; 128 px starts one step earlier
(128×128×3 → 64×64×64 → … → 8×8×512 → 4×4×1024).
Spectral norm is on every conv and linear of G and D.

The encoder takes exactly `clip_samples` (1 s): training crops a random 1 s window of each batch, and serving splits
a clip into whole 1 s windows and averages their embeddings (`SpeechEncoder.embed_clip`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

# The G step trains the speech encoder, its identity classifier and the generator end to end; the D step only the
# discriminator. Keys of `build_wav2pix`'s ModuleDict.
G_KEYS: tuple[str, ...] = ("encoder", "classifier", "generator")
D_KEYS: tuple[str, ...] = ("discriminator",)


@dataclass(frozen=True)
class Wav2PixConfig:
    """Sizes of the four networks. `width` scales every channel and hidden-unit count (at least 4 each) except
    `embed_dim`, so a CPU demo trains a narrow model with the same layout. G and D use the first log2(S/4) entries of
    their channel tuples (4 at 64 px, 5 at 128 px)."""
    image_size: int = 64                       # 64 or 128
    encoder_channels: tuple[int, ...] = (16, 32, 128, 256, 512, 1024)
    kernel: int = 15
    stride: int = 4
    embed_dim: int = 128
    hidden: int = 256                          # the encoder's FC between the flattened convs and the embedding
    generator_channels: tuple[int, ...] = (1024, 512, 256, 128, 64)      # at 4×4, 8×8, …; halved per ×2
    discriminator_channels: tuple[int, ...] = (64, 128, 256, 512, 1024)  # after each stride-2 conv
    discriminator_embed: int = 64              # e is projected to this many channels before the 4×4 concatenation
    pre_emphasis: float = 0.95
    clip_samples: int = 16000                  # 1 s at 16 kHz
    width: float = 1.0

    def __post_init__(self) -> None:
        if self.image_size not in (64, 128):
            raise ValueError(f"image_size must be 64 or 128, got {self.image_size}")
        if min(len(self.generator_channels), len(self.discriminator_channels)) < self.resamplings:
            raise ValueError(f"{self.image_size} px needs {self.resamplings} generator and discriminator channels")
        if self.width <= 0:
            raise ValueError(f"width must be positive, got {self.width}")

    @property
    def resamplings(self) -> int:
        """×2 up-samplings in G (= ÷2 down-samplings in D) between 4×4 and the image: 4 at 64 px, 5 at 128 px."""
        return int(math.log2(self.image_size // 4))

    def scaled(self, n: int) -> int:
        return max(4, round(n * self.width))

    @property
    def encoder_widths(self) -> tuple[int, ...]:
        return tuple(self.scaled(c) for c in self.encoder_channels)

    @property
    def generator_widths(self) -> tuple[int, ...]:
        return tuple(self.scaled(c) for c in self.generator_channels[:self.resamplings])

    @property
    def discriminator_widths(self) -> tuple[int, ...]:
        return tuple(self.scaled(c) for c in self.discriminator_channels[:self.resamplings])


def conv_length(length: int, kernel: int, stride: int) -> int:
    """Output length of a Conv1d with padding kernel // 2 (SEGAN's "same"-style padding)."""
    return (length + 2 * (kernel // 2) - kernel) // stride + 1


def pre_emphasise(wave: torch.Tensor, coefficient: float) -> torch.Tensor:
    """y[t] = x[t] − c·x[t−1] (y[0] = x[0]): boosts high frequencies, as SEGAN does, so the convs see the formants
    and not mostly the low-frequency energy. wave: (B, L) → (B, L)."""
    return torch.cat([wave[:, :1], wave[:, 1:] - coefficient * wave[:, :-1]], dim=1)


class SpeechEncoder(nn.Module):
    """Raw 1 s waveform → speaker embedding, in the style of the SEGAN discriminator (strided 1-D convs)."""

    def __init__(self, config: Wav2PixConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        channels, length = 1, config.clip_samples
        for c in config.encoder_widths:
            # no bias: the BatchNorm right after has its own shift
            layers += [nn.Conv1d(channels, c, config.kernel, stride=config.stride, padding=config.kernel // 2,
                                 bias=False),
                       nn.BatchNorm1d(c), nn.LeakyReLU(0.3)]
            channels, length = c, conv_length(length, config.kernel, config.stride)
        self.convs = nn.Sequential(*layers)
        self.flat_dim = channels * length  # 1024 × 4 = 4096 at width 1 and 1 s
        self.head = nn.Sequential(
            nn.Linear(self.flat_dim, config.scaled(config.hidden)), nn.LeakyReLU(0.3),
            nn.Linear(config.scaled(config.hidden), config.embed_dim),
        )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """wave: (B, clip_samples) float in [-1, 1] at 16 kHz → (B, embed_dim)."""
        if wave.shape[-1] != self.config.clip_samples:
            raise ValueError(f"the encoder takes exactly {self.config.clip_samples} samples, got {wave.shape[-1]}: "
                             "crop a window for training, or use embed_clip for longer clips")
        x = pre_emphasise(wave, self.config.pre_emphasis).unsqueeze(1)  # (B, 1, L)
        x = self.convs(x)                                               # (B, 1024, 4)
        return self.head(x.flatten(1))                                  # (B, 4096) → (B, embed_dim)

    def embed_clip(self, wave: torch.Tensor) -> torch.Tensor:
        """wave: (B, L) with L ≥ clip_samples → (B, embed_dim): the mean embedding of the L // clip_samples whole
        windows (a trailing partial window is dropped). More speech gives a steadier embedding than one second.
        Windows go through as one batch, so call it in eval mode: in train mode BatchNorm would mix them."""
        n = wave.shape[-1] // self.config.clip_samples
        if n == 0:
            raise ValueError(f"need at least {self.config.clip_samples} samples, got {wave.shape[-1]}")
        windows = wave[:, :n * self.config.clip_samples].reshape(-1, self.config.clip_samples)  # (B·n, clip)
        return self(windows).view(wave.shape[0], n, -1).mean(dim=1)                              # (B, embed_dim)


class Generator(nn.Module):
    """Embedding → face. No z: dropout on the embedding is the noise (train mode only), so eval is deterministic."""

    def __init__(self, config: Wav2PixConfig):
        super().__init__()
        self.config = config
        widths = config.generator_widths
        self.dropout = nn.Dropout(0.5)
        self.project = spectral_norm(nn.Linear(config.embed_dim, widths[0] * 4 * 4, bias=False))
        self.project_act = nn.Sequential(nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [spectral_norm(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False)),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        # the last ×2 up-sampling makes the RGB image; tanh matches faces scaled to [-1, 1]
        layers += [spectral_norm(nn.ConvTranspose2d(widths[-1], 3, 4, stride=2, padding=1)), nn.Tanh()]
        self.upsample = nn.Sequential(*layers)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """embedding: (B, embed_dim) → (B, 3, S, S) in [-1, 1]."""
        x = self.project(self.dropout(embedding))                     # (B, C·4·4)
        x = self.project_act(x.view(x.shape[0], -1, 4, 4))            # (B, C, 4, 4)
        return self.upsample(x)                                       # (B, 3, S, S)


class Discriminator(nn.Module):
    """(face, embedding) → real/fake score. The embedding joins at 4×4, so the last conv judges whether the face
    matches the voice (a real face of another speaker is a negative), not only whether it looks real."""

    def __init__(self, config: Wav2PixConfig):
        super().__init__()
        self.config = config
        widths = config.discriminator_widths
        # no BN on the first conv (DCGAN): normalising raw pixels' features across the batch hurts D
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(3, widths[0], 4, stride=2, padding=1)),
                                   nn.LeakyReLU(0.2, inplace=True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [spectral_norm(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=False)),
                       nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*layers)
        embed = config.scaled(config.discriminator_embed)
        self.embed = nn.Sequential(spectral_norm(nn.Linear(config.embed_dim, embed)), nn.LeakyReLU(0.2))
        self.score = spectral_norm(nn.Conv2d(widths[-1] + embed, 1, 4))  # 4×4 → 1×1

    def forward(self, face: torch.Tensor, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """face: (B, 3, S, S), embedding: (B, embed_dim) → raw scores (B,) (LSGAN uses them as they are) and the 4×4
        feature map (B, C, 4, 4) before the embedding joins, for the generator's feature-matching loss."""
        features = self.features(face)                                      # (B, C, 4, 4)
        e = self.embed(embedding)[:, :, None, None].expand(-1, -1, 4, 4)    # (B, P, 4, 4)
        score = self.score(torch.cat([features, e], dim=1))                 # (B, 1, 1, 1)
        return score.flatten(), features


def build_wav2pix(config: Wav2PixConfig, num_speakers: int) -> nn.ModuleDict:
    """The four networks; `G_KEYS` are optimised together by the G step, `D_KEYS` by the D step."""
    return nn.ModuleDict({
        "encoder": SpeechEncoder(config),
        # the auxiliary identity loss keeps the embedding speaker-discriminative while the GAN losses train it
        "classifier": nn.Linear(config.embed_dim, num_speakers),
        "generator": Generator(config),
        "discriminator": Discriminator(config),
    })
