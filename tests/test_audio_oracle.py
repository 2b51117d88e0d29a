"""Oracle: our torch spectrogram equals TensorFlow's `tf.signal.stft`, the op the paper's pipeline is written against.

Same framing (400-sample periodic Hann frames every 160 samples, zero-padded at the end to 512 points, no centring),
then the same power law (0.3 on the real and imaginary parts, signs kept).
"""

import os

import numpy as np
import pytest
import torch

from s2f.audio import POWER, SAMPLE_RATE, spectrogram

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402  (the oracle here and for the vggface backend's tests)

# float32: a bin sums 400 samples |x| <= 1 times a window <= 1, so rounding stays near 400 * 2**-24 * log2(512)
# ~ 2e-4 relative to the sum's size (<= 200) in the worst case; measured 8e-6.
RAW_ATOL = 5e-5
# sign(x)|x|^p is Hölder: |f(a) - f(b)| <= 2^(1-p) |a - b|^p, the bound for bins near zero ...
POWER_ATOL_NEAR_ZERO = 2 ** (1 - POWER) * RAW_ATOL ** POWER
# ... and where |x| >= 0.01 its slope p|x|^(p-1) is at most 0.3 * 0.01^-0.7 ~ 7.5, so errors stay 7.5 × RAW_ATOL
POWER_ATOL = 7.6 * RAW_ATOL


def tf_raw(wave: np.ndarray) -> np.ndarray:
    """(B, L) → (B, T, 257, 2) real and imaginary parts of tf.signal.stft with the paper's settings."""
    stft = tf.signal.stft(wave, frame_length=400, frame_step=160, fft_length=512,
                          window_fn=tf.signal.hann_window).numpy()
    return np.stack([stft.real, stft.imag], axis=-1)


def power_law(parts: np.ndarray, power: float) -> np.ndarray:
    return np.sign(parts) * np.abs(parts) ** power


def waveform(kind: str, seconds: int, dtype: type) -> np.ndarray:
    t = np.arange(seconds * SAMPLE_RATE) / SAMPLE_RATE
    if kind == "sine":
        return (0.5 * np.sin(2 * np.pi * 440.0 * t))[None].astype(dtype)  # (1, L)
    return np.random.default_rng(seconds).uniform(-1, 1, (2, len(t))).astype(dtype)  # (2, L)


@pytest.mark.parametrize("seconds, frames", [(3, 298), (6, 598)])
@pytest.mark.parametrize("kind", ["random", "sine"])
def test_spectrogram_equals_tf_signal_stft_in_float32(kind, seconds, frames):
    wave = waveform(kind, seconds, np.float32)
    ours = spectrogram(torch.from_numpy(wave)).numpy()  # (B, T, 257, 2)
    raw = tf_raw(wave)
    assert ours.shape == raw.shape == (len(wave), frames, 257, 2)
    # before the power law (undone on ours: sign(y)|y|^(1/p))
    np.testing.assert_allclose(power_law(ours, 1 / POWER), raw, rtol=0, atol=RAW_ATOL)
    # after it
    reference = power_law(raw, POWER)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=POWER_ATOL_NEAR_ZERO)
    large = np.abs(raw) >= 0.01
    assert large.sum() >= 10 * frames  # the tight check covers every frame's strong bins, not a handful
    np.testing.assert_allclose(ours[large], reference[large], rtol=0, atol=POWER_ATOL)


@pytest.mark.parametrize("kind", ["random", "sine"])
def test_spectrogram_equals_tf_signal_stft_in_float64(kind):
    """In float64 the two differ only by rounding: proof that the float32 gaps above are precision, not framing."""
    wave = waveform(kind, 6, np.float64)
    ours = spectrogram(torch.from_numpy(wave)).numpy()
    raw = tf_raw(wave)
    np.testing.assert_allclose(power_law(ours, 1 / POWER), raw, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours, power_law(raw, POWER), rtol=0, atol=1e-3)  # x^0.3 near 0: (1e-10)^0.3 ~ 1e-3
    np.testing.assert_allclose(ours[np.abs(raw) >= 0.01], power_law(raw, POWER)[np.abs(raw) >= 0.01], atol=1e-8)


def test_a_440_hz_tone_peaks_in_bin_14_in_both():
    """Agreement alone would pass if both were wrong the same way: the tone lands where 16000 / 512 Hz bins say."""
    wave = waveform("sine", 6, np.float32)
    for parts in (power_law(spectrogram(torch.from_numpy(wave)).numpy(), 1 / POWER), tf_raw(wave)):
        magnitude = np.hypot(parts[..., 0], parts[..., 1])  # (1, T, 257) |STFT|
        assert (magnitude.argmax(axis=-1) == round(440 / (SAMPLE_RATE / 512))).all()
