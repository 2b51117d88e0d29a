"""Wen et al. 2019's voice features: 64-band log mel spectrograms, normalised per utterance (pure torch).

    wave (B, L) → pre-emphasis 0.97 → 25 ms Hamming frames every 10 ms (no centre padding)
    → |512-point FFT|² / 512 → 64 triangular HTK-mel bands over 20–7200 Hz → log (floored)
    → per band: subtract its mean over time, divide by its std over time (+ eps)

Six seconds at 16 kHz give (B, 64, 598); in general T = 1 + (L − 400) // 160, as for `s2f.audio.spectrogram`.

Why these choices: pre-emphasis flattens speech's ~−6 dB/octave tilt so the upper bands are not lost under the floor;
the Hamming window is the HTK/Kaldi convention for speech features (its first sidelobe is ~−43 dB, so a tone leaks
less into neighbouring bands than with Hann's −31 dB); 7200 Hz stays clear of the 8 kHz Nyquist edge where
resampled recordings roll off; and the per-utterance normalisation removes the channel (microphone, gain), which
says nothing about the speaker's face.
"""

from __future__ import annotations

import torch

# the same 16 kHz framing as the Speech2Face spectrogram; re-exported so callers need only this module
from s2f.audio import FRAME_LENGTH, HOP_LENGTH, N_FFT, SAMPLE_RATE, num_frames  # noqa: F401

N_MELS = 64
F_MIN = 20.0          # Hz, lower edge of the lowest band
F_MAX = 7200.0        # Hz, upper edge of the highest band
PRE_EMPHASIS = 0.97
# Floor of the band power before the log: about the power of 16-bit quantisation noise in a mid-to-upper band (1e-11
# to 1e-9 after pre-emphasis), so digital silence sits near real quiet instead of −inf or a spike far below it.
LOG_FLOOR = 1e-10
NORM_EPS = 1e-5       # added to the std over time, so a constant band (silence) normalises to 0, not NaN


def hz_to_mel(hz: torch.Tensor | float) -> torch.Tensor:
    """HTK's mel scale: 2595 · log10(1 + f / 700); 1000 Hz is ~1000 mel."""
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(hz, dtype=torch.float64) / 700.0)


def mel_to_hz(mel: torch.Tensor | float) -> torch.Tensor:
    return 700.0 * (10.0 ** (torch.as_tensor(mel, dtype=torch.float64) / 2595.0) - 1.0)


def band_edges(n_mels: int = N_MELS, f_min: float = F_MIN, f_max: float = F_MAX) -> torch.Tensor:
    """(n_mels + 2,) Hz, equally spaced in mel: band i rises from edge i to its centre, edge i + 1, and falls to
    edge i + 2."""
    return mel_to_hz(torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2,
                                    dtype=torch.float64))


def band_centers(n_mels: int = N_MELS, f_min: float = F_MIN, f_max: float = F_MAX) -> torch.Tensor:
    """(n_mels,) Hz: where each band's weight is 1."""
    return band_edges(n_mels, f_min, f_max)[1:-1]


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE,
                   f_min: float = F_MIN, f_max: float = F_MAX) -> torch.Tensor:
    """(n_fft // 2 + 1, n_mels) triangular weights with peak 1, evaluated at each FFT bin's frequency.

    The triangles are evaluated at the bins' true frequencies rather than snapped to bin indices: with 64 bands from
    20 Hz the lowest bands are ~55 Hz wide, under two bins (31.25 Hz), and snapping would collapse some of them.
    """
    freqs = torch.linspace(0.0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)  # (F,)
    edges = band_edges(n_mels, f_min, f_max)                                            # (M + 2,)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]                           # (M,) each
    rising = (freqs[:, None] - lower) / (center - lower)                                # (F, M)
    falling = (upper - freqs[:, None]) / (upper - center)                               # (F, M)
    return torch.minimum(rising, falling).clamp_min(0.0).float()                        # (F, M)


def _pre_emphasis(wave: torch.Tensor) -> torch.Tensor:
    # y[0] = x[0], y[n] = x[n] − 0.97 · x[n − 1]: a first-order high-pass over the whole utterance
    return torch.cat([wave[:, :1], wave[:, 1:] - PRE_EMPHASIS * wave[:, :-1]], dim=1)  # (B, L)


def mel_power(wave: torch.Tensor) -> torch.Tensor:
    """Band powers before the log: wave (B, L) float in [-1, 1] at 16 kHz → (B, N_MELS, T)."""
    if wave.dim() != 2 or wave.shape[1] < FRAME_LENGTH:
        raise ValueError(f"expected (B, L) waveforms with L >= {FRAME_LENGTH}, got {tuple(wave.shape)}")
    frames = _pre_emphasis(wave).unfold(1, FRAME_LENGTH, HOP_LENGTH)  # (B, T, 400): frame t starts at 160·t
    window = torch.hamming_window(FRAME_LENGTH, periodic=False, dtype=wave.dtype, device=wave.device)
    spectrum = torch.fft.rfft(frames * window, n=N_FFT)               # (B, T, 257), zero-padded to 512
    power = spectrum.abs().pow(2) / N_FFT                             # (B, T, 257): the periodogram
    bank = mel_filterbank().to(device=wave.device, dtype=power.dtype)  # (257, 64)
    return (power @ bank).transpose(1, 2)                             # (B, T, 64) → (B, 64, T)


def log_mel(wave: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Wen et al.'s input: wave (B, L) float in [-1, 1] at 16 kHz → (B, 64, T), T = 1 + (L − 400) // 160.

    normalize: standardise each band of each utterance over time (the network's input); False keeps the raw log
    powers, e.g. to see where a sound's energy lies.
    """
    x = mel_power(wave).clamp_min(LOG_FLOOR).log()  # (B, 64, T)
    if not normalize:
        return x
    # Shifting by the first frame changes neither the result nor anything real, but makes a constant band (a floored
    # one: silence, or above a telephone clip's cut-off) exactly 0, where its float32 mean would be off by ~1e-6
    # and the division by eps would blow that rounding error up to ~0.2.
    x = x - x[:, :, :1]                                  # (B, 64, T)
    mean = x.mean(dim=2, keepdim=True)                   # (B, 64, 1)
    std = x.std(dim=2, unbiased=False, keepdim=True)     # (B, 64, 1)
    return (x - mean) / (std + NORM_EPS)

