"""Wen et al. 2019, "Face Reconstruction from Voice using Generative Adversarial Networks" (NeurIPS), with the
variants of its [Re] replication, sized by a config.

Four networks; the voice embedder is trained first, as a speaker classifier, then frozen:

    voice embedder  log-mel (B, 64, T) → five Conv1d(k3, s2) 256, 384, 576, 864, 64 (BN + ReLU after all but the
                    last) → mean over time → (B, 64)
    generator G     L2-normalised embedding (+ N(0, 0.05²) noise in training) as (B, 64, 1, 1)
                    → ConvT 1024 (k4, s1: 4×4) → ConvT 512, 256, 128, 64 (k4, s2, p1: 8, 16, 32, 64) → ReLU after
                    each → 1×1 conv → (B, 3, 64, 64)
    trunk           (B, 3, 64, 64) → 1×1 conv 32 → conv 64, 128, 256, 512 (k4, s2, p1: 32, 16, 8, 4)
                    → LeakyReLU 0.2 after each → conv k4 (no padding) → (B, 64, 1, 1) → (B, 64)
    D, C            two linear heads on the one trunk: D → 1 real/fake logit, C → one logit per identity

Variants ([Re] paper): "original" as above; "bn" puts BatchNorm before every activation of G and of the trunk;
"bn_tanh" adds a tanh on G's output; "tanh" has the tanh only; "dropout" puts Dropout(0.5) after every LeakyReLU of
the trunk. The embedder is the same in all of them (always with BN: it is a plain classifier, trained on its own).

The trunk's strided convs are 4×4, like G's transposed convs: a kernel divisible by the stride covers every input
pixel the same number of times (no checkerboard bias), and D mirrors G as in DCGAN. With padding 1 either 3 or 4
halves the size exactly; `trunk_kernel=3` is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from s2f.melbank import N_MELS, log_mel

VARIANTS = ("original", "bn", "bn_tanh", "tanh", "dropout")
# which entries of `build_wen2019`'s ModuleDict each alternating step optimises ("voice" is pre-trained, then frozen)
D_STEP_KEYS = ("trunk", "discriminator", "classifier")
G_STEP_KEYS = ("generator",)


@dataclass(frozen=True)
class Wen2019Config:
    variant: str = "original"
    voice_channels: tuple[int, ...] = (256, 384, 576, 864)     # the embedder's convs before the last
    embed_dim: int = 64                                        # the embedder's last conv, G's input
    generator_channels: tuple[int, ...] = (1024, 512, 256, 128, 64)
    trunk_channels: tuple[int, ...] = (32, 64, 128, 256, 512)  # the 1×1 conv, then the strided convs
    face_dim: int = 64                                         # the trunk's output, the heads' input
    noise_std: float = 0.05                                    # σ of the noise added to G's input in training
    image_size: int = 64
    width: float = 1.0         # scales every channel count but embed_dim and face_dim (at least 4): CPU demos
    trunk_kernel: int = 4
    n_mels: int = N_MELS
    dropout: float = 0.5       # used by the "dropout" variant only
    leaky_slope: float = 0.2

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant {self.variant!r} is not one of {VARIANTS}")
        if self.width <= 0:
            raise ValueError(f"width must be positive, got {self.width}")
        if self.trunk_kernel not in (3, 4):
            raise ValueError(f"trunk_kernel must be 3 or 4 (both halve with padding 1), got {self.trunk_kernel}")
        # G starts at 4×4 and doubles with each channel after the first; the trunk halves back down to 4×4
        if 4 * 2 ** (len(self.generator_channels) - 1) != self.image_size:
            raise ValueError(f"{len(self.generator_channels)} generator layers make "
                             f"{4 * 2 ** (len(self.generator_channels) - 1)} px images, not {self.image_size}")
        if self.image_size // 2 ** (len(self.trunk_channels) - 1) != 4:
            raise ValueError(f"{len(self.trunk_channels)} trunk layers do not bring {self.image_size} px down to 4×4")

    @property
    def batchnorm(self) -> bool:
        return self.variant in ("bn", "bn_tanh")

    @property
    def tanh_output(self) -> bool:
        return self.variant in ("bn_tanh", "tanh")

    @property
    def uses_dropout(self) -> bool:
        return self.variant == "dropout"

    def scaled(self, channels: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(max(4, round(c * self.width)) for c in channels)


class VoiceEmbedder(nn.Module):
    """Voice → 64-D speaker embedding, with the speaker-classifier head it is pre-trained through.

    Time is averaged away at the end, so any clip of at least 25 ms gives the same output size.
    """

    def __init__(self, config: Wen2019Config, num_speakers: int):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        channels = config.n_mels
        for out in config.scaled(config.voice_channels):
            # no conv bias before BN: BN's shift makes it redundant
            layers += [nn.Conv1d(channels, out, 3, stride=2, padding=1, bias=False), nn.BatchNorm1d(out),
                       nn.ReLU(inplace=True)]
            channels = out
        layers.append(nn.Conv1d(channels, config.embed_dim, 3, stride=2, padding=1))
        self.convs = nn.Sequential(*layers)
        self.classifier = nn.Linear(config.embed_dim, num_speakers)  # used only in pre-training

    def forward(self, voice: torch.Tensor) -> torch.Tensor:
        """voice: (B, L) waveform in [-1, 1] at 16 kHz, or its (B, 64, T) `log_mel` → (B, embed_dim)."""
        mel = log_mel(voice) if voice.dim() == 2 else voice  # (B, 64, T)
        return self.convs(mel).mean(dim=2)                   # (B, E, T / 32) → (B, E)

    def logits(self, voice: torch.Tensor) -> torch.Tensor:
        """(B, num_speakers): the speaker classifier of pre-training."""
        return self.classifier(self(voice))

    def embed(self, voice: torch.Tensor, train: bool) -> torch.Tensor:
        """G's conditioning vector: the unit-length embedding, plus N(0, noise_std²) noise in training only.

        The noise makes G see a small cloud around each voice instead of a point; it is drawn from the global RNG
        so that a run resumed with the RNG state replays it.
        """
        e = F.normalize(self(voice), dim=1)  # (B, E)
        if train and self.config.noise_std > 0:
            e = e + self.config.noise_std * torch.randn_like(e)
        return e


def _norm_act(config: Wen2019Config, channels: int, act: nn.Module) -> list[nn.Module]:
    """What follows each conv of G and the trunk: [BN] → activation → [Dropout], as the variant says."""
    layers: list[nn.Module] = [nn.BatchNorm2d(channels)] if config.batchnorm else []
    layers.append(act)
    if config.uses_dropout and isinstance(act, nn.LeakyReLU):  # dropout is for D and C only, never G
        layers.append(nn.Dropout(config.dropout))
    return layers


class Generator(nn.Module):
    def __init__(self, config: Wen2019Config):
        super().__init__()
        self.config = config
        channels = config.scaled(config.generator_channels)
        bias = not config.batchnorm  # BN's shift makes a conv bias redundant
        # 1×1 → 4×4, then each layer doubles: 8, 16, 32, 64
        layers: list[nn.Module] = [nn.ConvTranspose2d(config.embed_dim, channels[0], 4, stride=1, bias=bias)]
        layers += _norm_act(config, channels[0], nn.ReLU(inplace=True))
        for c_in, c_out in zip(channels, channels[1:]):
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=bias))
            layers += _norm_act(config, c_out, nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*layers)
        self.to_rgb = nn.Conv2d(channels[-1], 3, 1)
        self.out = nn.Tanh() if config.tanh_output else nn.Identity()

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """embedding: (B, embed_dim) → (B, 3, S, S); in [-1, 1] only in the tanh variants."""
        x = embedding[:, :, None, None]  # (B, E, 1, 1)
        x = self.blocks(x)               # (B, C, S, S)
        return self.out(self.to_rgb(x))  # (B, 3, S, S)


class FaceTrunk(nn.Module):
    """Face image → face_dim features, shared by the discriminator D and the identity classifier C."""

    def __init__(self, config: Wen2019Config):
        super().__init__()
        self.config = config
        channels = config.scaled(config.trunk_channels)
        bias = not config.batchnorm
        layers: list[nn.Module] = [nn.Conv2d(3, channels[0], 1, bias=bias)]
        layers += _norm_act(config, channels[0], nn.LeakyReLU(config.leaky_slope, inplace=True))
        for c_in, c_out in zip(channels, channels[1:]):
            # halves the size: 64 → 32 → 16 → 8 → 4
            layers.append(nn.Conv2d(c_in, c_out, config.trunk_kernel, stride=2, padding=1, bias=bias))
            layers += _norm_act(config, c_out, nn.LeakyReLU(config.leaky_slope, inplace=True))
        self.blocks = nn.Sequential(*layers)
        self.to_features = nn.Conv2d(channels[-1], config.face_dim, 4)  # 4×4 → 1×1, no padding

    def forward(self, face: torch.Tensor) -> torch.Tensor:
        """face: (B, 3, S, S) in [-1, 1] → (B, face_dim)."""
        x = self.blocks(face)                   # (B, C, 4, 4)
        return self.to_features(x).flatten(1)   # (B, F, 1, 1) → (B, F)


def build_wen2019(config: Wen2019Config, num_speakers: int) -> nn.ModuleDict:
    """All the networks, by the names the training loop uses. The trunk is one module: D and C are its two heads,
    `discriminator(trunk(x))` and `classifier(trunk(x))`. num_speakers: the training identities, the same for
    voices (the embedder's pre-training) and faces (C)."""
    return nn.ModuleDict({
        "voice": VoiceEmbedder(config, num_speakers),
        "generator": Generator(config),
        "trunk": FaceTrunk(config),
        "discriminator": nn.Linear(config.face_dim, 1),
        "classifier": nn.Linear(config.face_dim, num_speakers),
    })


def step_parameters(models: nn.ModuleDict, keys: tuple[str, ...]) -> list[nn.Parameter]:
    """The parameters one alternating step optimises: `step_parameters(models, D_STEP_KEYS)`."""
    return [p for key in keys for p in models[key].parameters()]
