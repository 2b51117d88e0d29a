"""Named model sizes: `paper` (Oh et al., CVPR 2019, Table 1: ~165M parameters, 4096-d VGG-Face features) and `demo`
(the small encoder `params.yaml` trains on a laptop against 128-d dlib features).

A preset names the encoder together with the face-feature backend it regresses, because the output size of the
encoder is fixed by that backend (VGG-Face fc7: 4096, dlib: 128).
"""

from __future__ import annotations

from dataclasses import dataclass

from s2f.models.voice_encoder import PAPER_BLOCKS, ConvBlock, VoiceEncoderConfig


@dataclass(frozen=True)
class Preset:
    name: str
    encoder: VoiceEncoderConfig
    backend: str          # "vggface" | "dlib": the face features the encoder regresses
    feature_dim: int      # size of those features (= encoder.out_dim)
    seconds: float        # length of the audio clips
    description: str


PRESETS: dict[str, Preset] = {
    "paper": Preset(
        name="paper",
        encoder=VoiceEncoderConfig(blocks=PAPER_BLOCKS, last_channels=512, kernel=4, hidden=4096, out_dim=4096,
                                   last_freq_stride=2, pooled_norm=True),
        backend="vggface", feature_dim=4096, seconds=6.0,
        description="Speech2Face voice encoder as in Table 1 of Oh et al. (CVPR 2019), regressing 4096-d VGG-Face fc7",
    ),
    "demo": Preset(
        name="demo",
        # exactly params.yaml train_encoder.model (the training stage builds the same config from that file)
        encoder=VoiceEncoderConfig(blocks=(ConvBlock(8, True, 2), ConvBlock(16, True, 2), ConvBlock(32, True, 2),
                                           ConvBlock(64, True, 2)),
                                   last_channels=64, kernel=4, hidden=256, out_dim=128),
        backend="dlib", feature_dim=128, seconds=6.0,
        description="small encoder of params.yaml for CPU runs, regressing 128-d dlib face descriptors",
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
