"""The latent traits a demo speaker is drawn from, shared by their face and their voice.

Three traits are shared (the model can learn them from the voice) and one is the face's own (it cannot):
- `size`: vocal-tract length sets formant frequencies; the face gets a longer, wider lower face.
- `shape`: sets the pitch range and median pitch; the face gets wider-set eyes and a wider mouth.
- `tone`: sets breathiness (glottal noise and spectral tilt); the face gets a darker or lighter skin tint.
- `face_only`: geometry noise in the brows and nose that no voice feature reveals (keeps retrieval from being trivial).
Each is standard normal, clipped to ±2.5, so every rendered face stays a plausible face.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class SpeakerTraits:
    size: float
    shape: float
    tone: float
    face_only: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def draw_traits(rng: np.random.Generator) -> SpeakerTraits:
    values = np.clip(rng.standard_normal(4), -2.5, 2.5)
    return SpeakerTraits(*map(float, values))
