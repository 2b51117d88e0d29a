"""The baseline for bench/preprocess_throughput.py: preprocessing the way the public Speech2Face re-implementations do it.

Why it exists: a speed-up only means something against a fair reference measured in the same run. This is that
reference, written plainly on purpose: decode every frame of the clip, run dlib's HOG detector on each, keep the
largest face of the middle frame, extract the audio to a WAV file, load it with librosa, compute a power-law
compressed STFT and store one pickle per sample. Single process, as the re-implementations run it.

Only the benchmark writes these pickles, into a temporary folder; the project never reads them back (see STYLE.md:
pickle is not one of our data formats).
"""

from __future__ import annotations

import pickle
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
from PIL import Image

from s2f.faces.dlib_models import hog_detector
from s2f.io.media import ffmpeg_exe, probe

SAMPLE_RATE = 16000
N_FFT, WIN, HOP = 512, 400, 160
POWER = 0.3


@dataclass(frozen=True)
class BaselineParams:
    """The few settings the baseline shares with s2f's PreprocessParams, so both do comparable work."""

    seconds: float = 6.0
    crop_size: int = 224
    crop_margin: float = 0.4
    upsample: int = 0


def read_all_frames(path: Path) -> np.ndarray:
    """Every video frame as RGB (T, H, W, 3) uint8, piped from ffmpeg as rawvideo."""
    info = probe(path)
    cmd = [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-map", "0:v:0",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    frame_bytes = info.width * info.height * 3
    count = len(raw) // frame_bytes
    return np.frombuffer(raw[:count * frame_bytes], np.uint8).reshape(count, info.height, info.width, 3)


def detect_all(frames: np.ndarray, upsample: int) -> list[list]:
    """dlib HOG face rectangles for each frame: the per-frame detection the re-implementations run."""
    detector = hog_detector()
    return [list(detector(np.ascontiguousarray(frame), upsample)) for frame in frames]


def crop_largest(frame: np.ndarray, rects: list, size: int, margin: float) -> np.ndarray | None:
    """The largest face, grown by `margin` per side, cropped square and resized to size×size."""
    if not rects:
        return None
    r = max(rects, key=lambda r: r.width() * r.height())
    side = max(r.width(), r.height()) * (1 + 2 * margin)
    cx, cy = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2
    box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    img = Image.fromarray(frame).transform((size, size), Image.Transform.EXTENT, box, Image.Resampling.BILINEAR)
    return np.asarray(img)


def load_audio(path: Path, seconds: float) -> np.ndarray:
    """Extract a 16 kHz mono WAV with ffmpeg, then librosa.load it; tile/trim to `seconds` like Speech2Face's 6 s."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "audio.wav"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-y", "-i", str(path), "-vn", "-ac", "1",
                        "-ar", str(SAMPLE_RATE), str(wav)], capture_output=True, check=True)
        y, _ = librosa.load(wav, sr=SAMPLE_RATE)
    n = int(seconds * SAMPLE_RATE)
    return np.tile(y, int(np.ceil(n / max(len(y), 1))))[:n]


def spectrogram(y: np.ndarray) -> np.ndarray:
    """Power-law compressed complex STFT, (T, 257, 2) float32: real and imaginary parts, each sign·|x|^0.3."""
    stft = librosa.stft(y, n_fft=N_FFT, win_length=WIN, hop_length=HOP)        # (257, T) complex
    parts = np.stack([stft.real, stft.imag], axis=-1)                          # (257, T, 2)
    return (np.sign(parts) * np.abs(parts) ** POWER).transpose(1, 0, 2).astype(np.float32)  # (T, 257, 2)


def process_clip(path: Path, out_path: Path, params: BaselineParams) -> bool:
    """One clip → one pickle; False when the clip yields no sample (no face in the middle frame, no audio)."""
    try:
        frames = read_all_frames(path)
        faces = detect_all(frames, params.upsample)
        if len(frames) == 0:
            return False
        middle = len(frames) // 2
        face = crop_largest(frames[middle], faces[middle], params.crop_size, params.crop_margin)
        if face is None:
            return False
        spec = spectrogram(load_audio(path, params.seconds))
    except (subprocess.CalledProcessError, ValueError, RuntimeError):
        return False
    with open(out_path, "wb") as fh:
        pickle.dump({"spec": spec, "face": face}, fh)
    return True


def preprocess_baseline(rows: list[dict], raw_dir: Path, out_dir: Path, params: BaselineParams) -> int:
    """Process `rows` (manifest records with sample_id and clip) one after another; return the accepted count."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return sum(process_clip(raw_dir / row["clip"], out_dir / f"{row['sample_id']}.pkl", params) for row in rows)
