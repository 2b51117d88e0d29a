"""A trained GAN family as one audio → face network: its voice network and its generator, nothing else.

Why a wrapper: training needs the discriminator and the identity classifiers, serving and evaluation need only
voice → image, and every family must answer the same call (`s2f infer --model NAME`, the evaluation table). The
config names the family and carries its network config as plain data, so the JSON beside the weights rebuilds it
(`s2f.io.checkpoints`), no pickle.

forward: (B, L) float waveforms in [-1, 1] at 16 kHz (6 s clips as the pipeline stores them) → (B, 3, S, S) in [0, 1].
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from s2f.models.wav2pix import Generator as Wav2PixGenerator
from s2f.models.wav2pix import SpeechEncoder, Wav2PixConfig
from s2f.models.wen2019 import Generator as Wen2019Generator
from s2f.models.wen2019 import VoiceEmbedder, Wen2019Config

FAMILY_CONFIGS: dict[str, type] = {"wen2019": Wen2019Config, "wav2pix": Wav2PixConfig}


@dataclass(frozen=True)
class VoiceToFaceConfig:
    family: str                                   # "wen2019" | "wav2pix"
    num_speakers: int                             # the training identities (sizes the voice network's classifier)
    network: dict = field(default_factory=dict)   # the family's config fields (Wen2019Config / Wav2PixConfig)

    def family_config(self):
        if self.family not in FAMILY_CONFIGS:
            raise ValueError(f"unknown GAN family {self.family!r}; known: {', '.join(FAMILY_CONFIGS)}")
        kind = FAMILY_CONFIGS[self.family]
        names = {f.name for f in dataclasses.fields(kind)}
        return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.network.items() if k in names})


def voice_to_face_config(family: str, network_config, num_speakers: int) -> VoiceToFaceConfig:
    return VoiceToFaceConfig(family, num_speakers, dataclasses.asdict(network_config))


class VoiceToFace(nn.Module):
    """The voice network and generator of one family (submodule names as in training, so weights copy over)."""

    def __init__(self, config: VoiceToFaceConfig):
        super().__init__()
        self.config = config
        net = config.family_config()
        if config.family == "wen2019":
            self.voice = VoiceEmbedder(net, config.num_speakers)
            self.generator = Wen2019Generator(net)
        else:
            self.voice = SpeechEncoder(net)
            self.generator = Wav2PixGenerator(net)

    @property
    def image_size(self) -> int:
        return self.config.family_config().image_size

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, L) → the generator's condition (B, E), as in evaluation mode (no training noise)."""
        if self.config.family == "wen2019":
            return self.voice.embed(wave, train=False)
        return self.voice.embed_clip(wave)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        image = self.generator(self.embed(wave))           # (B, 3, S, S), about [-1, 1]
        return image.clamp(-1, 1).add(1).div(2)              # (B, 3, S, S) in [0, 1]
