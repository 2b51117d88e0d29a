"""Hostile audio in a serving request: tiny files that claim many channels or a huge sample rate must cost bounded
memory (refused from the header, or decoded a block at a time), while ordinary multichannel / high-rate clips still
decode to the right mono 16 kHz signal."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from s2f.audio import SAMPLE_RATE
from s2f.inference import MAX_SECONDS, AudioInputError, decode_audio
from tests.serving import audio_bytes, tone

# What one request may allocate: a few copies of the longest accepted clip at 16 kHz mono float32 (1.9 MB each)
# plus a fixed decode block. Decoding every channel at the file's rate, as before, took 150 MB to 1.3 GB here.
MONO_16K_BYTES = int(MAX_SECONDS * SAMPLE_RATE) * 4
BOUND = 4 * MONO_16K_BYTES + (8 << 20)


def peak_bytes(call: Callable[[], object]) -> tuple[int, object]:
    """(peak bytes allocated while `call` ran — numpy arrays included —, what it returned or raised)."""
    tracemalloc.start()
    try:
        try:
            result: object = call()
        except AudioInputError as err:
            result = err
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def silent(frames: int, channels: int, rate: int, fmt: str, subtype: str) -> bytes:
    return audio_bytes(np.zeros((frames, channels), np.float32), rate, fmt, subtype)


def dominant_hz(wave: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / SAMPLE_RATE)[spectrum.argmax()])


@pytest.mark.parametrize("make, detail", [
    # 255 silent Vorbis channels: 3 s here (29 s takes 80 s to encode), ~5 KB that decoded to 150 MB of float32
    (lambda: silent(3 * 48_000, 255, 48_000, "OGG", "VORBIS"), "255 channels"),
    # 29 s of 8 channels at 655 kHz: 165 KB of FLAC that decoded to 600 MB of float32
    (lambda: silent(29 * 655_000, 8, 655_000, "FLAC", "PCM_16"), "655000 Hz"),
], ids=["ogg-255-channels", "flac-655khz"])
def test_absurd_headers_are_refused_before_decoding(make, detail):
    data = make()
    assert len(data) < 200_000   # small on the wire: only the header says how much work it is
    peak, result = peak_bytes(lambda: decode_audio(data, "upload"))
    assert isinstance(result, AudioInputError), f"decoded instead of refused, peak {peak / 2**20:.0f} MiB"
    assert result.reason == "too_large" and detail in str(result) and str(result).startswith("upload: too_large")
    assert peak < BOUND, f"peak {peak / 2**20:.0f} MiB"


def test_a_long_high_rate_multichannel_clip_is_decoded_in_bounded_memory():
    """29 s × 8 channels × 192 kHz (accepted: a studio rate) is 178 MB as float32; one request holds far less."""
    data = silent(29 * 192_000, 8, 192_000, "FLAC", "PCM_16")
    peak, wave = peak_bytes(lambda: decode_audio(data, "studio.flac"))
    assert isinstance(wave, np.ndarray) and wave.dtype == np.float32
    assert len(wave) == 29 * SAMPLE_RATE and not wave.any()
    assert peak < BOUND, f"peak {peak / 2**20:.0f} MiB"


def test_a_high_rate_multichannel_sine_becomes_the_right_mono_16k_signal():
    """A 440 Hz tone on 2 of 8 channels at 192 kHz: mono is their mean (amplitude 0.8 × 2 / 8), at 16 kHz, exactly
    what resampling the whole mixed-down signal at once gives (the blocks leave no seams)."""
    rate, seconds = 192_000, 5.0
    wave = np.zeros((int(seconds * rate), 8), np.float32)
    wave[:, 0] = wave[:, 5] = tone(seconds, rate, 440.0, 0.8)
    data = audio_bytes(wave, rate, "FLAC", "PCM_24")
    out = decode_audio(data, "tone.flac")
    assert len(out) == seconds * SAMPLE_RATE
    assert dominant_hz(out) == pytest.approx(440, abs=1)
    assert np.abs(out[1000:-1000]).max() == pytest.approx(0.2, abs=0.005)
    whole = sf.read(io.BytesIO(data), dtype="float32")[0].mean(axis=1)
    np.testing.assert_allclose(out, resample_poly(whole, 1, 12), atol=1e-6)


@pytest.mark.parametrize("rate", [8_000, 11_025, 22_050, 44_100, 48_000, 96_000, 192_000, 37_000, SAMPLE_RATE])
@pytest.mark.parametrize("block", [1, 777, 100_000])
def test_the_streaming_resampler_equals_resample_poly(rate, block):
    """Fed in blocks of any size, the result is resample_poly's on the whole signal (its own filter and ratio)."""
    from fractions import Fraction

    from s2f.inference import Resampler, resample

    x = np.random.default_rng(rate).uniform(-1, 1, int(1.3 * rate) + 3).astype(np.float32)
    if block == 1:
        x = x[:2000]   # one sample at a time: correct, only slow
    ratio = Fraction(SAMPLE_RATE, rate).limit_denominator(1000)
    expected = resample_poly(x, ratio.numerator, ratio.denominator)
    stream = Resampler(rate)
    for start in range(0, len(x), block):
        stream.push(x[start:start + block])
    got = stream.finish()
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(resample(x, rate), expected, atol=1e-6)
    assert len(Resampler(rate).finish()) == 0
