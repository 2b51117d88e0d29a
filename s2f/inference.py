"""Voice → face for one clip at a time: decode any audio file, run the trained model, make a PNG.

Two kinds of model answer the same calls (`faces`, `face`, `image_size`): `Speech2Face` (the voice encoder and face
decoder) and `GanFaces` (a GAN family's `VoiceToFace` network: wen2019, wav2pix).

What serving (`s2f.serving`), `s2f infer` and the Prefect flows share. Nothing here touches MLflow or the network;
the only I/O is bytes in, bytes out.

Audio is brought to what the encoder was trained on: mono, 16 kHz, float in [-1, 1], repeated or cut to 6 s as the
paper does (`s2f.audio.fit_to_clip`, the policy evaluation's short-clip metric uses too). Inputs that cannot be a
voice clip are refused with an `AudioInputError` whose `reason` is one of `REASONS`, so a server can answer 4xx and a
batch can report the file and go on. A request is untrusted: its memory is bounded by its 16 kHz mono clip plus one
decoding block, whatever channels and sample rate its header claims (`decode_audio`).
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
from scipy.signal import firwin, upfirdn

from s2f.audio import SAMPLE_RATE, fit_to_clip
from s2f.io.checkpoints import ModelFileError, load_model, read_meta
from s2f.models.face_decoder import FaceDecoder
from s2f.models.voice_encoder import VoiceEncoder
from s2f.models.voice_to_face import VoiceToFace

MAX_SECONDS = 30.0     # a request longer than this is refused: the encoder only looks at 6 s anyway
MIN_SECONDS = 1.0      # as preprocess (params.yaml preprocess.min_seconds): less is too little voice to repeat
MAX_BYTES = 64 << 20   # refused before decoding: 30 s of even 96 kHz stereo float32 is 23 MiB
MAX_RATE = 192_000     # the highest studio rate; a voice needs 16 kHz, and the resampling filter is sized for audio
MAX_SAMPLES_PER_SECOND = 1_536_000  # channels × rate (8 × 192 kHz, 32 × 48 kHz): caps the decoding work
BLOCK_SAMPLES = 1 << 18  # samples (all channels) decoded at a time: 1 MiB of float32 whatever the file's shape
CLIP_SECONDS = 6.0     # what the encoder was trained on
REASONS = ("not_audio", "empty", "too_long", "too_short", "too_large")


class AudioInputError(ValueError):
    """An input that is not a usable voice clip; `reason` (one of `REASONS`) is machine-readable."""

    def __init__(self, name: str, reason: str, detail: str = ""):
        self.name, self.reason, self.detail = name, reason, detail
        super().__init__(f"{name}: {reason}" + (f" ({detail})" if detail else ""))


def decode_audio(data: bytes, name: str = "input", max_seconds: float = MAX_SECONDS,
                 min_seconds: float = MIN_SECONDS) -> np.ndarray:
    """A voice clip → float32 mono 16 kHz: an audio file (`decode_sound_file`), or else the first audio stream of a
    video or other media container (MP4, MKV, WebM, MOV, M4A, ...) through the bundled ffmpeg (`decode_with_ffmpeg`).
    What neither reads is `not_audio`."""
    try:
        return decode_sound_file(data, name, max_seconds, min_seconds)
    except AudioInputError as err:
        if err.reason != "not_audio":
            raise
        return decode_with_ffmpeg(data, name, max_seconds, min_seconds, err)


def decode_with_ffmpeg(data: bytes, name: str, max_seconds: float, min_seconds: float,
                       not_audio: AudioInputError) -> np.ndarray:
    """The first audio stream of a media container, as preprocessing reads a clip (`s2f.io.media`, local files only,
    no URL inside a file is followed). The cost is bounded like an audio file's: only the audio stream is decoded
    (never the video) and at most `max_seconds` of it, and a container that says it is longer is refused. Bytes
    ffmpeg cannot open either raise `not_audio` (the error libsndfile gave)."""
    import subprocess
    import tempfile

    from s2f.io import media

    if not data:
        raise AudioInputError(name, "empty", "0 bytes")
    with tempfile.TemporaryDirectory(prefix="s2f-voice-") as folder:
        path = Path(folder) / "input"
        path.write_bytes(data)   # containers such as MP4 need a seekable file, not a pipe
        try:
            probed = media.probe_and_read_audio(path, SAMPLE_RATE, max_seconds)
        except (media.MediaError, subprocess.TimeoutExpired):
            raise not_audio from None
    if not probed.info.has_audio:
        raise AudioInputError(name, "not_audio", "a media file with no audio stream")
    if probed.info.duration > max_seconds:
        raise AudioInputError(name, "too_long", f"{probed.info.duration:.1f} s > {max_seconds:g} s")
    if probed.error is not None:
        raise AudioInputError(name, "not_audio", f"its audio stream does not decode: {probed.error.detail}")
    pcm = probed.samples
    check_length(name, len(pcm), SAMPLE_RATE, max_seconds, min_seconds)
    return pcm.astype(np.float32) / 32768.0


def decode_sound_file(data: bytes, name: str = "input", max_seconds: float = MAX_SECONDS,
                      min_seconds: float = MIN_SECONDS) -> np.ndarray:
    """Any file libsndfile reads (WAV, FLAC, OGG/Opus, MP3, AIFF, ...), any rate and channels → float32 mono 16 kHz.

    Why this shape: a request is untrusted, and a few KB of compressed silence can claim 255 channels or a 655 kHz
    rate. So the header is checked first (length, rate, channels × rate), nothing is decoded for a file that fails,
    and the samples are then decoded a block at a time, mixed to mono and resampled as they come: one request holds
    its 16 kHz mono clip plus one block, whatever the file's channels and rate. The read stops after `max_seconds`
    as well, so a header that lies about its length cannot make us decode more.
    """
    if not data:
        raise AudioInputError(name, "empty", "0 bytes")
    if len(data) > MAX_BYTES:
        raise AudioInputError(name, "too_large", f"{len(data) / 2**20:.0f} MiB > {MAX_BYTES / 2**20:.0f} MiB")
    with _sound_file(data, name) as f:
        rate = f.samplerate
        check_header(name, f.frames, rate, f.channels, max_seconds)
        wave, frames = _read_mono_16k(f, name, max_seconds)
    check_length(name, frames, rate, max_seconds, min_seconds)
    return np.clip(wave, -1.0, 1.0, out=wave)


_DECODE_ERRORS = (sf.SoundFileError, RuntimeError, ValueError, TypeError)   # what libsndfile raises on bad bytes


def _not_audio(name: str, err: Exception) -> AudioInputError:
    return AudioInputError(name, "not_audio", getattr(err, "error_string", None) or str(err)[:200])


def _sound_file(data: bytes, name: str) -> sf.SoundFile:
    """The bytes opened by libsndfile (header only); bytes it cannot read are `not_audio`."""
    try:
        return sf.SoundFile(io.BytesIO(data))
    except _DECODE_ERRORS as err:
        raise _not_audio(name, err) from None


def check_header(name: str, frames: int, rate: int, channels: int, max_seconds: float) -> None:
    """Refuse, before any sample is decoded, a file whose header alone says it is too long or too much work."""
    if rate > MAX_RATE:
        raise AudioInputError(name, "too_large", f"sample rate {rate} Hz > {MAX_RATE} Hz")
    if channels * rate > MAX_SAMPLES_PER_SECOND:
        raise AudioInputError(name, "too_large", f"{channels} channels × {rate} Hz = {channels * rate} samples/s "
                                                 f"> {MAX_SAMPLES_PER_SECOND}")
    if frames > max_seconds * rate:
        raise AudioInputError(name, "too_long", f"{frames / rate:.1f} s > {max_seconds:g} s")


def check_length(name: str, frames: int, rate: int, max_seconds: float, min_seconds: float) -> None:
    """Refuse what was actually decoded (`frames` at `rate`) when it is empty, too long or too short."""
    if frames > max_seconds * rate:
        raise AudioInputError(name, "too_long", f"{frames / rate:.1f} s > {max_seconds:g} s")
    if frames == 0:
        raise AudioInputError(name, "empty", "no samples")
    if frames < min_seconds * rate:
        raise AudioInputError(name, "too_short", f"{frames / rate:.2f} s < {min_seconds:g} s")


def _read_mono_16k(f: sf.SoundFile, name: str, max_seconds: float) -> tuple[np.ndarray, int]:
    """(16 kHz mono float32 of at most max_seconds + 1 frame of `f`, frames read), a block of frames at a time.
    Samples libsndfile cannot decode past a valid header are `not_audio`."""
    limit = int(max_seconds * f.samplerate) + 1
    block = np.empty((max(1, BLOCK_SAMPLES // f.channels), f.channels), np.float32)
    stream, frames = Resampler(f.samplerate), 0
    while frames < limit:
        try:
            got = f.read(min(len(block), limit - frames), dtype="float32", always_2d=True, out=block)
        except _DECODE_ERRORS as err:
            raise _not_audio(name, err) from None
        if len(got) == 0:
            break
        frames += len(got)
        stream.push(np.nan_to_num(got.mean(axis=1), nan=0.0, posinf=1.0, neginf=-1.0))
    return stream.finish(), frames


class Resampler:
    """`scipy.signal.resample_poly` to 16 kHz (anti-aliased polyphase, its own filter), fed a block at a time.

    Why not resample_poly itself: it needs the whole signal at the input rate (30 s at 192 kHz is 23 MB, more as its
    float64 intermediates) where the 16 kHz result is 1.9 MB. This gives the same numbers while holding only the
    output and the filter's span of input. The ratio is exact for every common rate (44.1 kHz → 160/441); an odd
    rate is approximated within 0.1 % so the filter stays small.
    """

    def __init__(self, rate: int):
        ratio = Fraction(SAMPLE_RATE, rate).limit_denominator(1000)
        self.up, self.down = ratio.numerator, ratio.denominator
        self.h, self.skip = _filter(self.up, self.down) if self.up != self.down else (None, 0)
        self.kept = np.zeros(0, np.float32)            # input from index `start` (a multiple of `down`) on
        self.start = self.fed = self.made = 0          # first kept input, inputs fed, outputs made (global indices)
        self.out: list[np.ndarray] = []

    def push(self, block: np.ndarray) -> None:
        """Take the next input samples; make every output they complete."""
        block = np.asarray(block, np.float32)
        if self.h is None or len(block) == 0:
            self.out.append(block.copy())
            self.fed += len(block)
            return
        kept = np.concatenate([self.kept, block])
        self.fed += len(block)
        end = -(-self.fed * self.up // self.down)      # outputs whose inputs are all in: k · down < fed · up
        first = self.start * self.up // self.down      # the global output index of upfirdn(kept)[0]
        self.out.append(upfirdn(self.h, kept, self.up, self.down)[self.made - first:end - first])
        self.made = end
        oldest = max(0, (end * self.down - len(self.h)) // self.up) // self.down * self.down  # still needed later
        self.kept, self.start = kept[oldest - self.start:].copy(), oldest   # a copy frees the block

    def finish(self) -> np.ndarray:
        """The whole 16 kHz signal: as long as resample_poly's, the filter's tail flushed with zeros."""
        if self.h is None:
            return np.concatenate([np.zeros(0, np.float32), *self.out])
        n_in = self.fed
        n_out = -(-n_in * self.up // self.down)
        needed = -(-(self.skip + n_out) * self.down // self.up) - n_in   # zeros that complete the last outputs
        if n_in:
            self.push(np.zeros(max(0, needed), np.float32))
        y = np.concatenate([np.zeros(0, np.float32), *self.out])[self.skip:self.skip + n_out]
        self.out = []
        return y


def _filter(up: int, down: int) -> tuple[np.ndarray, int]:
    """resample_poly's float32 low-pass filter (zero-padded in front to centre the outputs) and the number of
    outputs it drops for the filter's delay, built as scipy builds them so the two agree to the last bit."""
    half = 10 * max(up, down)
    pre_pad = down - half % down
    taps = firwin(2 * half + 1, 1.0 / max(up, down), window=("kaiser", 5.0)).astype(np.float32)
    return np.concatenate([np.zeros(pre_pad, np.float32), taps * up]), (half + pre_pad) // down


def resample(wave: np.ndarray, rate: int) -> np.ndarray:
    """A whole waveform at `rate` → 16 kHz float32 (`Resampler` in one go; `resample_poly`'s result)."""
    stream = Resampler(rate)
    stream.push(wave)
    return stream.finish()


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def encode(encoder: VoiceEncoder, waves: Sequence[np.ndarray], seconds: float = CLIP_SECONDS,
           batch_size: int = 16) -> np.ndarray:
    """16 kHz float waveforms of any length ≥ 1 sample → (N, D) face features, each clip tiled/cut to `seconds`."""
    if len(waves) == 0:
        return np.zeros((0, encoder.config.out_dim), np.float32)
    device = next(encoder.parameters()).device
    clips = np.stack([fit_to_clip(np.asarray(w, np.float32), seconds) for w in waves])  # (N, L)
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
    return _uint8_images(torch.cat(images))


def _uint8_images(images: torch.Tensor) -> np.ndarray:
    """(N, 3, S, S) floats in [0, 1] → (N, S, S, 3) uint8 RGB."""
    return (images.clamp(0, 1).permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()


@torch.no_grad()
def generate(model: VoiceToFace, waves: Sequence[np.ndarray], seconds: float = CLIP_SECONDS,
             batch_size: int = 16) -> np.ndarray:
    """16 kHz float waveforms of any length ≥ 1 sample → (N, S, S, 3) uint8 faces from a GAN family's network,
    each clip tiled/cut to `seconds` as for the encoder (`s2f.audio.fit_to_clip`)."""
    if len(waves) == 0:
        return np.zeros((0, model.image_size, model.image_size, 3), np.uint8)
    device = next(model.parameters()).device
    clips = np.stack([fit_to_clip(np.asarray(w, np.float32), seconds) for w in waves])  # (N, L)
    images = [model(torch.from_numpy(clips[i:i + batch_size]).to(device)).float().cpu()
              for i in range(0, len(clips), batch_size)]
    return _uint8_images(torch.cat(images))


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


class GanFaces:
    """A trained GAN family's audio → face network (`VoiceToFace`): a voice clip in, a face image out, answering
    as `Speech2Face` does."""

    def __init__(self, model: VoiceToFace, seconds: float = CLIP_SECONDS):
        if not isinstance(model, VoiceToFace):
            raise ValueError(f"a {type(model).__name__} is not a GAN family's audio → face model (VoiceToFace)")
        self.model, self.seconds = model.eval(), seconds

    @classmethod
    def from_file(cls, model_pt: Path, device: str | torch.device | None = None) -> GanFaces:
        """From a `save_model` output: X.pt weights (loaded with weights_only) beside its X.json config; another
        kind of model file (an encoder's, a decoder's) is a `ModelFileError` naming it, before any weight is read."""
        kind = read_meta(Path(model_pt)).get("kind")
        if kind != "VoiceToFace":
            raise ModelFileError(f"{model_pt}: a {kind} model, not a GAN family's audio → face model (VoiceToFace)")
        return cls(load_model(Path(model_pt), device or default_device()))

    @property
    def family(self) -> str:
        return self.model.config.family

    @property
    def image_size(self) -> int:
        return self.model.image_size

    def faces(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """N waveforms → (N, S, S, 3) uint8 faces, batched."""
        return generate(self.model, waves, self.seconds)

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
