import numpy as np
import pytest
import torch

from s2f.audio import fit_to_clip, num_frames, repeat_to_length, spectrogram


def numpy_speech2face_spectrogram(wave: np.ndarray) -> np.ndarray:
    """The paper's formula written independently: 400-sample periodic-Hann frames every 160 samples, each zero-padded
    at its end to 512 points, rfft, then sign(x)·|x|^0.3 on real and imaginary parts."""
    n = np.arange(400)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / 400)
    frames = [np.fft.rfft(wave[s:s + 400] * window, n=512) for s in range(0, len(wave) - 400 + 1, 160)]
    z = np.stack(frames)  # (T, 257) complex
    parts = np.stack([z.real, z.imag], axis=-1)
    return np.sign(parts) * np.abs(parts) ** 0.3


def test_six_seconds_give_598_by_257_by_2():
    wave = torch.zeros(1, 6 * 16000)
    assert spectrogram(wave).shape == (1, 598, 257, 2)
    assert num_frames(6 * 16000) == 598


def test_spectrogram_matches_numpy_reference():
    rng = np.random.default_rng(0)
    t = np.arange(6 * 16000) / 16000
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(len(t))
    ours = spectrogram(torch.from_numpy(wave)[None])[0].numpy()
    ref = numpy_speech2face_spectrogram(wave)
    assert ours.shape == ref.shape == (598, 257, 2)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6)


def test_spectrogram_energy_sits_at_the_tone_frequency():
    t = np.arange(16000) / 16000
    spec = spectrogram(torch.from_numpy(np.sin(2 * np.pi * 1000 * t))[None])[0]
    linear = spec.sign() * spec.abs().pow(1 / 0.3)  # undo the power law before measuring energy
    magnitude = linear.pow(2).sum(-1).mean(0)  # (257,)
    assert int(magnitude.argmax()) == round(1000 / (16000 / 512))


def test_repeat_to_length_tiles_short_clips():
    out = repeat_to_length(np.array([1, 2, 3], np.int16), 7)
    assert out.tolist() == [1, 2, 3, 1, 2, 3, 1]
    with pytest.raises(ValueError, match="empty"):
        repeat_to_length(np.array([], np.int16), 5)


def test_fit_to_clip_repeats_a_short_clip_and_cuts_a_long_one_to_the_seconds_asked():
    short = np.array([1, 2, 3], np.int16)
    np.testing.assert_array_equal(fit_to_clip(short, 3.5, sample_rate=2), [1, 2, 3, 1, 2, 3, 1])
    np.testing.assert_array_equal(fit_to_clip(np.arange(20.0), 1.5, sample_rate=4), np.arange(6.0))
    assert len(fit_to_clip(np.ones(3 * 16_000, np.float32), 6.0)) == 6 * 16_000
