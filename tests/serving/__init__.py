"""Helpers for the inference and serving tests: tiny untrained models on disk, audio files in memory."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from s2f.io.checkpoints import save_model
from s2f.models.face_decoder import FaceDecoder, FaceDecoderConfig
from s2f.models.presets import get_preset
from s2f.models.voice_encoder import VoiceEncoder
from tests.conftest import ffmpeg

REAL_CLIP = "clips/video_retalking__examples_face_1.mp4"   # 6.13 s, AAC 44.1 kHz stereo
IMAGE_SIZE = 64


def tiny_models(folder: Path) -> tuple[Path, Path]:
    """The demo encoder and a slim 64 px decoder, untrained (seeded), saved as .pt + .json; returns their paths."""
    torch.manual_seed(0)
    encoder = VoiceEncoder(get_preset("demo").encoder)
    decoder = FaceDecoder(FaceDecoderConfig(in_dim=encoder.config.out_dim, hidden=64, image_size=IMAGE_SIZE,
                                            texture_channels=64, landmark_hidden=32))
    paths = folder / "voice_encoder.pt", folder / "face_decoder.pt"
    for model, path in zip((encoder, decoder), paths):
        save_model(model.eval(), path)
    return paths


def tiny_gan(folder: Path, family: str = "wav2pix", seed: int = 0) -> Path:
    """A narrow untrained (seeded) GAN family's audio → face model, 64 px, saved as FAMILY.pt + FAMILY.json."""
    from s2f.models.voice_to_face import VoiceToFace, voice_to_face_config
    from s2f.models.wav2pix import Wav2PixConfig
    from s2f.models.wen2019 import Wen2019Config

    torch.manual_seed(seed)
    network = Wav2PixConfig(width=0.05) if family == "wav2pix" else Wen2019Config(width=0.05)
    path = folder / f"{family}.pt"
    save_model(VoiceToFace(voice_to_face_config(family, network, 4)).eval(), path, {"family": family})
    return path


def extract_wav(clip: Path, out: Path) -> Path:
    """The clip's audio track as 16-bit WAV at its own rate and channels (what a user would upload)."""
    ffmpeg("-i", str(clip), "-vn", "-map", "0:a:0", "-acodec", "pcm_s16le", str(out))
    return out


def audio_bytes(samples: np.ndarray, rate: int, fmt: str = "WAV", subtype: str | None = "PCM_16") -> bytes:
    """(L,) or (L, channels) floats → an audio file in memory."""
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def tone(seconds: float, rate: int, hz: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)
