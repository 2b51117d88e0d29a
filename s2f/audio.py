"""Waveform shaping and the Speech2Face spectrogram (pure torch/numpy; no I/O).

torch is imported only by the function that needs it: the data stages use this module's numpy half, and importing
torch would add 0.7 s to the start of each of their processes.

The spectrogram follows the paper: 25 ms Hann frames (400 samples at 16 kHz) every 10 ms (160 samples), each frame
zero-padded at its end to a 512-point FFT (as `tf.signal.stft` does), then a power law of 0.3 applied to the real and
imaginary parts separately, keeping their signs. Six seconds give 598 frames × 257 bins × 2 parts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

SAMPLE_RATE = 16_000
FRAME_LENGTH = 400   # 25 ms
HOP_LENGTH = 160     # 10 ms
N_FFT = 512
POWER = 0.3


def repeat_to_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Tile a clip until it is `length` samples long, then cut (the paper repeats clips shorter than 6 s)."""
    if len(samples) == 0:
        raise ValueError("cannot repeat an empty waveform")
    reps = -(-length // len(samples))
    return np.tile(samples, reps)[:length]


def fit_to_clip(wave: np.ndarray, seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The one short-clip policy: a clip is repeated until it is `seconds` long, a longer one cut to its first
    `seconds`.

    Why one function: preprocess stores clips this way (the paper repeats clips shorter than 6 s), serving feeds the
    encoder this way, and evaluation's short-clip metric must measure exactly what serving does with a short voice.
    """
    return repeat_to_length(wave, int(round(seconds * sample_rate)))


def num_frames(num_samples: int) -> int:
    return 1 + (num_samples - FRAME_LENGTH) // HOP_LENGTH


def spectrogram(wave: torch.Tensor) -> torch.Tensor:
    """Power-law-compressed complex STFT of float waveforms in [-1, 1].

    wave: (B, L) → (B, T, 257, 2) with T = 1 + (L - 400) // 160 (598 for 6 s at 16 kHz).
    """
    import torch

    window = torch.zeros(N_FFT, dtype=wave.dtype, device=wave.device)
    window[:FRAME_LENGTH] = torch.hann_window(FRAME_LENGTH, periodic=True, dtype=wave.dtype, device=wave.device)
    padded = torch.nn.functional.pad(wave, (0, N_FFT - FRAME_LENGTH))  # lets the last 400-sample frame fit
    stft = torch.stft(padded, n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=N_FFT, window=window,
                      center=False, return_complex=True)  # (B, 257, T)
    parts = torch.view_as_real(stft).transpose(1, 2)  # (B, T, 257, 2)
    return parts.sign() * parts.abs().pow(POWER)


def int16_to_float(samples: torch.Tensor) -> torch.Tensor:
    return samples.float() / 32768.0
