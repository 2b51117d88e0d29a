"""Voice → face for one clip at a time: decode any audio file, run the trained encoder and decoder, make a PNG.

What serving (`s2f.serving`), `s2f infer` and the Prefect flows share. Nothing here touches MLflow or the network;
the only I/O is bytes in, bytes out.

Audio is brought to what the encoder was trained on: mono, 16 kHz, float in [-1, 1], repeated or cut to 6 s as the
paper does (`repeat_to_length`). Inputs that cannot be a voice clip are refused with an `AudioInputError` whose
`reason` is one of `REASONS`, so a server can answer 4xx and a batch can report the file and go on.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from PIL import Image
from scipy.signal import resample_poly

from s2f.audio import SAMPLE_RATE, repeat_to_length
from s2f.io.checkpoints import load_model
from s2f.models.face_decoder import FaceDecoder
from s2f.models.voice_encoder import VoiceEncoder

MAX_SECONDS = 30.0     # a request longer than this is refused: the encoder only looks at 6 s anyway
MIN_SECONDS = 1.0      # as preprocess (params.yaml preprocess.min_seconds): less is too little voice to repeat
MAX_BYTES = 64 << 20   # refused before decoding: 30 s of even 96 kHz stereo float32 is 23 MiB
CLIP_SECONDS = 6.0     # what the encoder was trained on
REASONS = ("not_audio", "empty", "too_long", "too_short")


class AudioInputError(ValueError):
    """An input that is not a usable voice clip; `reason` (one of `REASONS`) is machine-readable."""

    def __init__(self, name: str, reason: str, detail: str = ""):
        self.name, self.reason, self.detail = name, reason, detail
        super().__init__(f"{name}: {reason}" + (f" ({detail})" if detail else ""))


def decode_audio(data: bytes, name: str = "input", max_seconds: float = MAX_SECONDS,
                 min_seconds: float = MIN_SECONDS) -> np.ndarray:
    """Any file libsndfile reads (WAV, FLAC, OGG/Opus, MP3, AIFF, ...), any rate and channels → float32 mono 16 kHz.

    The length is checked from the header before the samples are decoded, and the read is bounded as well, so a
    header that lies about its length cannot make us decode more than `max_seconds`.
    """
    if not data:
        raise AudioInputError(name, "empty", "0 bytes")
    if len(data) > MAX_BYTES:
        raise AudioInputError(name, "too_long", f"{len(data) / 2**20:.0f} MiB > {MAX_BYTES / 2**20:.0f} MiB")
    frames, rate, samples = _read_bounded(data, name, max_seconds)
    if frames > max_seconds * rate or len(samples) > max_seconds * rate:
        raise AudioInputError(name, "too_long", f"{max(frames, len(samples)) / rate:.1f} s > {max_seconds:g} s")
    if len(samples) == 0:
        raise AudioInputError(name, "empty", "no samples")
    if len(samples) < min_seconds * rate:
        raise AudioInputError(name, "too_short", f"{len(samples) / rate:.2f} s < {min_seconds:g} s")
    mono = np.nan_to_num(samples.mean(axis=1), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(resample(mono, rate), -1.0, 1.0).astype(np.float32)


def _read_bounded(data: bytes, name: str, max_seconds: float) -> tuple[int, int, np.ndarray]:
    """(frames the header claims, sample rate, at most max_seconds + 1 sample of (L, channels) float32)."""
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            if f.frames > max_seconds * f.samplerate:   # the header alone says it is too long: decode nothing
                return f.frames, f.samplerate, np.zeros((0, 1), np.float32)
            samples = f.read(int(max_seconds * f.samplerate) + 1, dtype="float32", always_2d=True)
            return f.frames, f.samplerate, samples
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as err:
        raise AudioInputError(name, "not_audio", getattr(err, "error_string", None) or str(err)[:200]) from None


def resample(wave: np.ndarray, rate: int) -> np.ndarray:
    """Polyphase resampling to 16 kHz (anti-aliased). The ratio is exact for every common rate (44.1 kHz → 160/441);
    an odd rate is approximated within 0.1 % so the filter stays small."""
    if rate == SAMPLE_RATE:
        return wave
    ratio = Fraction(SAMPLE_RATE, rate).limit_denominator(1000)
    return resample_poly(wave, ratio.numerator, ratio.denominator).astype(np.float32)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def encode(encoder: VoiceEncoder, waves: Sequence[np.ndarray], seconds: float = CLIP_SECONDS,
           batch_size: int = 16) -> np.ndarray:
    """16 kHz float waveforms of any length ≥ 1 sample → (N, D) face features, each clip tiled/cut to `seconds`."""
    if len(waves) == 0:
        return np.zeros((0, encoder.config.out_dim), np.float32)
    device = next(encoder.parameters()).device
    length = int(seconds * SAMPLE_RATE)
    clips = np.stack([repeat_to_length(np.asarray(w, np.float32), length) for w in waves])  # (N, L)
    out = [encoder(torch.from_numpy(clips[i:i + batch_size]).to(device)).float().cpu()
           for i in range(0, len(clips), batch_size)]
    return torch.cat(out).numpy()


@torch.no_grad()
def decode(decoder: FaceDecoder, features: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """(N, D) face features → (N, S, S, 3) uint8 RGB images."""
    size = decoder.config.image_size
    if len(features) == 0:
        return np.zeros((0, size, size, 3), np.uint8)
    device = next(decoder.parameters()).device
    x = torch.as_tensor(np.asarray(features, np.float32))
    images = [decoder(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    image = torch.cat(images).clamp(0, 1).permute(0, 2, 3, 1)  # (N, S, S, 3)
    return (image * 255).round().to(torch.uint8).numpy()


class Speech2Face:
    """The trained voice encoder and face decoder together: a voice clip in, a face image out."""

    def __init__(self, encoder: VoiceEncoder, decoder: FaceDecoder, seconds: float = CLIP_SECONDS):
        if encoder.config.out_dim != decoder.config.in_dim:
            raise ValueError(f"encoder gives {encoder.config.out_dim}-d features but the decoder takes "
                             f"{decoder.config.in_dim}-d ones: they were not trained together")
        self.encoder, self.decoder, self.seconds = encoder.eval(), decoder.eval(), seconds

    @classmethod
    def from_files(cls, encoder_pt: Path, decoder_pt: Path, device: str | torch.device | None = None) -> Speech2Face:
        """From `save_model` outputs: X.pt weights (loaded with weights_only) beside their X.json configs."""
        device = device or default_device()
        return cls(load_model(Path(encoder_pt), device), load_model(Path(decoder_pt), device))

    @property
    def image_size(self) -> int:
        return self.decoder.config.image_size

    def feature(self, wave16k: np.ndarray) -> np.ndarray:
        """(L,) 16 kHz waveform → (D,) face feature."""
        return encode(self.encoder, [wave16k], self.seconds)[0]

    def faces(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """N waveforms → (N, S, S, 3) uint8 faces, batched."""
        return decode(self.decoder, encode(self.encoder, waves, self.seconds))

    def face(self, wave16k: np.ndarray) -> np.ndarray:
        """(L,) 16 kHz waveform → (S, S, 3) uint8 face."""
        return self.faces([wave16k])[0]


def png_bytes(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 → PNG file bytes."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8), "RGB").save(buf, format="PNG")
    return buf.getvalue()


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode_audio(text: object, name: str = "input") -> bytes:
    """A request's base64 field → bytes; a missing field is `empty`, text that is not base64 is `not_audio`."""
    if text is None or (isinstance(text, float) and np.isnan(text)) or text == "":
        raise AudioInputError(name, "empty", "no data")
    if not isinstance(text, str | bytes):
        raise AudioInputError(name, "not_audio", f"expected a base64 string, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise AudioInputError(name, "not_audio", f"not base64: {err}") from None
