"""The ridge baseline: spectral statistics → face features, its strength chosen on validation speakers."""

from __future__ import annotations

import numpy as np

from s2f.baselines import fit_ridge, ridge_baseline_predictions, spectral_statistics
from s2f.metrics import gallery_recall

SR = 16000


def _speaker_clips(rng: np.random.Generator, speakers: int, clips: int, seconds: float = 1.0):
    """Noise through a per-speaker random spectral envelope (the speaker's voice), a fresh noise per clip."""
    n = int(seconds * SR)
    freqs = np.fft.rfftfreq(n, 1 / SR)
    audio, ids = [], []
    for s in range(speakers):
        centres, widths = rng.uniform(200, 7000, 3), rng.uniform(150, 900, 3)
        envelope = 0.05 + sum(np.exp(-0.5 * ((freqs - c) / w) ** 2) for c, w in zip(centres, widths))
        for _ in range(clips):
            wave = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * envelope, n)
            audio.append((wave / np.abs(wave).max() * 12000).astype(np.int16))
            ids.append(f"spk{s:02d}")
    return np.stack(audio), np.array(ids)


def test_spectral_statistics_are_per_bin_mean_and_std_of_log_power():
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((3, SR)) * 3000).astype(np.int16)
    stats = spectral_statistics(audio)
    assert stats.shape == (3, 514) and np.isfinite(stats).all()
    assert np.allclose(spectral_statistics(audio[:1]), stats[:1])   # per clip, batch-independent
    assert (stats[:, 257:] > 0).all()                                # the std half


def test_ridge_baseline_beats_chance_when_features_are_linear_in_the_statistics():
    rng = np.random.default_rng(1)
    train_audio, train_ids = _speaker_clips(rng, 30, 3)
    test_audio, test_ids = _speaker_clips(rng, 20, 3)
    mix = rng.standard_normal((514, 16)) / np.sqrt(514)
    stats_train, stats_test = spectral_statistics(train_audio), spectral_statistics(test_audio)
    centre = stats_train.mean(axis=0)
    train_emb = ((stats_train - centre) @ mix + rng.standard_normal((len(train_audio), 16)) * 0.05).astype(np.float32)
    test_emb = ((stats_test - centre) @ mix).astype(np.float32)

    out = ridge_baseline_predictions(train_audio, train_emb, train_ids, test_audio, short_seconds=0.5)
    assert out.pred_6s.shape == out.pred_short.shape == test_emb.shape
    assert np.isfinite(out.model.val_recall_at_1) and out.model.alpha > 0
    ids = np.array(sorted(set(test_ids)))
    gallery = np.stack([test_emb[test_ids == s].mean(axis=0) for s in ids])
    full = gallery_recall(out.pred_6s, test_ids, gallery, ids, [1])["recall_at_1"]
    short = gallery_recall(out.pred_short, test_ids, gallery, ids, [1])["recall_at_1"]
    assert full > 0.5 > 1 / len(ids)        # chance: 0.05
    assert short > 2 / len(ids)


def test_ridge_strength_is_chosen_on_the_validation_speakers():
    rng = np.random.default_rng(2)
    stats = rng.standard_normal((60, 20))
    ids = np.repeat([f"s{i}" for i in range(20)], 3)
    emb = stats @ rng.standard_normal((20, 4))
    strong = fit_ridge(stats, emb, ids, alphas=[1e-3, 1e6])   # a clean linear problem: the weak ridge wins
    assert strong.alpha == 1e-3 and strong.val_recall_at_1 > 0.25   # 4 validation speakers: chance 0.25
    assert np.allclose(strong.predict_stats(stats), emb, atol=1e-2)
