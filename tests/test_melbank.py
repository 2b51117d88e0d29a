import math

import pytest
import torch

from s2f.melbank import (F_MAX, F_MIN, FRAME_LENGTH, HOP_LENGTH, N_FFT, N_MELS, SAMPLE_RATE, band_centers, band_edges,
                         hz_to_mel, log_mel, mel_filterbank, mel_power)


def tone(hz: float, seconds: float = 3.0, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * torch.sin(2 * math.pi * hz * t))[None]  # (1, L)


def speech_like(batch: int, seconds: float) -> torch.Tensor:
    """Noise under a slow loudness envelope: every band varies over time, as with speech."""
    g = torch.Generator().manual_seed(0)
    n = int(seconds * SAMPLE_RATE)
    envelope = 0.05 + 0.3 * torch.sin(torch.linspace(0, 12 * math.pi, n)).abs()
    return (torch.randn(batch, n, generator=g) * envelope).clamp(-1, 1)


def test_wens_framing_and_bands():
    assert (SAMPLE_RATE, FRAME_LENGTH, HOP_LENGTH, N_FFT) == (16_000, 400, 160, 512)  # 25 ms / 10 ms at 16 kHz
    assert (N_MELS, F_MIN, F_MAX) == (64, 20.0, 7200.0)


@pytest.mark.parametrize("seconds, frames", [(3, 298), (6, 598)])
def test_output_shape(seconds, frames):
    out = log_mel(speech_like(2, seconds))
    assert out.shape == (2, N_MELS, frames)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("length", [400, 559, 560, 48_123])
def test_frames_have_no_centre_padding(length):
    assert log_mel(torch.randn(1, length) * 0.1).shape[2] == 1 + (length - 400) // 160


def test_an_impulse_lands_in_exactly_the_frames_that_cover_it():
    """Frame t spans samples [160·t, 160·t + 400): a click at sample 16 000 is seen by frames 98, 99, 100 only."""
    wave = torch.zeros(1, 32_000)
    wave[0, 16_000] = 0.9
    loud = (mel_power(wave)[0].sum(0) > 1e-6).nonzero().flatten().tolist()
    assert loud == [98, 99, 100]


def test_each_band_is_standardised_over_time():
    out = log_mel(speech_like(3, 6))
    assert out.mean(dim=2).abs().max() < 1e-4
    torch.testing.assert_close(out.std(dim=2, unbiased=False), torch.ones(3, N_MELS), atol=1e-3, rtol=0)


def test_normalisation_is_per_utterance():
    """A loud clip next to a quiet one in the batch changes nothing, and the gain of a clip itself is removed."""
    waves = speech_like(2, 3)
    alone = log_mel(waves[:1])
    torch.testing.assert_close(log_mel(torch.cat([waves[:1], 3 * waves[1:]]))[:1], alone)
    torch.testing.assert_close(log_mel(0.25 * waves[:1]), alone, atol=1e-3, rtol=0)


def test_digital_silence_gives_zeros_not_nan():
    assert log_mel(torch.zeros(2, 16_000)).abs().max() == 0
    assert torch.isfinite(log_mel(torch.zeros(2, 16_000), normalize=False)).all()


@pytest.mark.parametrize("hz", [500.0, 1000.0, 4000.0])
def test_a_pure_tone_peaks_in_the_band_centred_nearest_it(hz):
    power = mel_power(tone(hz))[0].mean(dim=1)  # (64,) before log and normalisation
    nearest = int((band_centers() - hz).abs().argmin())
    assert int(power.argmax()) == nearest
    # and it is a peak, not a tilt: bands a few steps away get orders of magnitude less
    far = torch.cat([power[: max(nearest - 3, 0)], power[nearest + 4:]])
    assert far.max() < 1e-3 * power[nearest]
    assert int(log_mel(tone(hz), normalize=False)[0].mean(dim=1).argmax()) == nearest


def test_band_edges_are_evenly_spaced_on_the_htk_mel_scale():
    assert float(hz_to_mel(1000.0)) == pytest.approx(1000.0, abs=0.1)  # HTK: 2595 log10(1 + f/700)
    edges = band_edges()
    assert edges.shape == (N_MELS + 2,)
    assert float(edges[0]) == pytest.approx(20.0) and float(edges[-1]) == pytest.approx(7200.0)
    steps = hz_to_mel(edges).diff()
    torch.testing.assert_close(steps, torch.full_like(steps, float(steps.mean())))


def test_filterbank_bands_are_triangles_covering_20_to_7200_hz():
    bank = mel_filterbank()
    assert bank.shape == (N_FFT // 2 + 1, N_MELS)
    assert (bank >= 0).all() and bank.max() <= 1
    freqs = torch.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = band_edges().float()
    for m in range(N_MELS):
        weights = bank[:, m]
        inside = (freqs > edges[m]) & (freqs < edges[m + 2])
        assert (weights[~inside] == 0).all(), f"band {m} reaches outside its edges"
        assert (weights[inside] > 0).all(), f"band {m} has a hole"
        rising, falling = weights[freqs <= edges[m + 1]], weights[freqs >= edges[m + 1]]
        assert (rising.diff() >= 0).all() and (falling.diff() <= 0).all(), f"band {m} is not a triangle"
        # linear sides: the weight at a bin is its distance from the lower edge over the rise
        k = int(inside.nonzero()[0])
        assert float(weights[k]) == pytest.approx(float((freqs[k] - edges[m]) / (edges[m + 1] - edges[m])), abs=1e-5)
    covered = bank.sum(dim=1) > 0
    assert (covered == ((freqs > 20) & (freqs < 7200))).all()  # every bin in 20–7200 Hz, none outside
