"""A baseline the voice encoder must beat: ridge regression from plain spectral statistics to face features (numpy).

What the statistics are (`spectral_statistics`): each clip's log power spectrum over time, framed as the encoder's
input is (25 ms Hann frames every 10 ms, 512-point FFT, 257 bins), reduced to the mean and the standard deviation
over time of every bin's log power (natural log of power + 1e-10): 514 numbers per clip, nothing learnt. They carry
what a long-term average spectrum carries (formant region, spectral tilt, breathiness, loudness) and, through the
spread, some of the pitch movement; no model of pitch or formants is built on top.

The regression (`fit_ridge`): statistics standardised over the training clips, features centred, closed-form ridge
for a grid of strengths. The strength is chosen on validation speakers carved from the training speakers exactly as
the encoder's are (`s2f.split.validation_speakers`): the best validation R@1 against a gallery of those speakers'
mean true features (`s2f.metrics.gallery_recall`), the smaller feature error among equals; the model is then refit on
all training clips with that strength.

`ridge_baseline_predictions` returns the test clips' predicted features from all 6 s and from the first 3 s repeated
to the clip length as serving does (`s2f.audio.fit_to_clip`), for the evaluate stage to score with the same
retrieval code as the encoder's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from s2f.audio import FRAME_LENGTH, HOP_LENGTH, N_FFT, SAMPLE_RATE, fit_to_clip
from s2f.metrics import gallery_recall
from s2f.split import validation_speakers

ALPHAS = tuple(10.0 ** np.arange(-1, 5.5, 0.5))   # ridge strengths tried (the statistics are standardised)
LOG_FLOOR = 1e-10


def spectral_statistics(audio: np.ndarray, batch: int = 64) -> np.ndarray:
    """(N, L) int16 (or float in [-1, 1]) clips → (N, 514) float64: per-bin mean and std over time of the log power
    spectrum (bins 0..256 means, then 0..256 stds)."""
    window = np.hanning(FRAME_LENGTH + 1)[:-1]   # periodic Hann, as the encoder's STFT
    out = []
    for start in range(0, len(audio), batch):
        wave = np.asarray(audio[start:start + batch], np.float64)
        if np.issubdtype(np.asarray(audio).dtype, np.integer):
            wave = wave / 32768.0
        frames = np.lib.stride_tricks.sliding_window_view(wave, FRAME_LENGTH, axis=1)[:, ::HOP_LENGTH]  # (B, T, 400)
        power = np.abs(np.fft.rfft(frames * window, n=N_FFT, axis=-1)) ** 2                          # (B, T, 257)
        logp = np.log(power + LOG_FLOOR)
        out.append(np.concatenate([logp.mean(axis=1), logp.std(axis=1)], axis=1))
    return np.concatenate(out)


@dataclass
class RidgeModel:
    """features ≈ ((stats − mean) / scale) @ coef + intercept."""

    mean: np.ndarray        # (S,)
    scale: np.ndarray       # (S,)
    coef: np.ndarray        # (S, D)
    intercept: np.ndarray   # (D,)
    alpha: float
    val_recall_at_1: float  # of the chosen strength, on the validation speakers (nan without them)

    def predict_stats(self, stats: np.ndarray) -> np.ndarray:
        return ((stats - self.mean) / self.scale) @ self.coef + self.intercept

    def predict(self, audio: np.ndarray) -> np.ndarray:
        return self.predict_stats(spectral_statistics(audio)).astype(np.float32)


def _ridge_path(x: np.ndarray, y: np.ndarray, alphas: Sequence[float]):
    """Standardise x, centre y; the ridge solutions for every alpha from one SVD."""
    mean, scale = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-8)
    z, y_mean = (x - mean) / scale, y.mean(axis=0)
    u, s, vt = np.linalg.svd(z, full_matrices=False)
    uty = u.T @ (y - y_mean)
    for alpha in alphas:
        yield alpha, RidgeModel(mean, scale, vt.T @ ((s / (s ** 2 + alpha))[:, None] * uty), y_mean, alpha, np.nan)


def fit_ridge(stats: np.ndarray, embedding: np.ndarray, speakers: np.ndarray, val_fraction: float = 0.2,
              seed: int = 0, alphas: Sequence[float] = ALPHAS) -> RidgeModel:
    """Ridge from spectral statistics (N, S) to face features (N, D), its strength chosen on validation speakers
    (see the module docstring), refit on every clip. val_fraction 0: the middle of `alphas`, no choice made."""
    stats, embedding, speakers = np.asarray(stats, np.float64), np.asarray(embedding, np.float64), np.asarray(speakers)
    held = validation_speakers(speakers, val_fraction, seed)
    if not held.any():
        alpha = float(alphas[len(alphas) // 2])
        return next(_ridge_path(stats, embedding, [alpha]))[1]
    ids = np.array(sorted(set(speakers[held].tolist())))
    gallery = np.stack([embedding[speakers == s].mean(axis=0) for s in ids])
    best: tuple[float, float, float] | None = None   # (recall, -error, alpha)
    for alpha, model in _ridge_path(stats[~held], embedding[~held], alphas):
        pred = model.predict_stats(stats[held])
        recall = gallery_recall(pred, speakers[held], gallery, ids, [1], gallery_size=len(ids))["recall_at_1"]
        score = (recall, -float(((pred - embedding[held]) ** 2).sum(axis=1).mean()), alpha)
        best = score if best is None or score[:2] > best[:2] else best
    model = next(_ridge_path(stats, embedding, [best[2]]))[1]
    model.val_recall_at_1 = best[0]
    return model


@dataclass
class BaselinePredictions:
    pred_short: np.ndarray   # (N, D) from the first `short_seconds` repeated to the clip length (serving's policy)
    pred_6s: np.ndarray      # (N, D) from the whole clips
    model: RidgeModel


def ridge_baseline_predictions(train_audio: np.ndarray, train_embedding: np.ndarray, train_speakers: np.ndarray,
                               test_audio: np.ndarray, short_seconds: float = 3.0, val_fraction: float = 0.2,
                               seed: int = 0, sample_rate: int = SAMPLE_RATE) -> BaselinePredictions:
    """Fit the ridge baseline on the training clips and predict the test clips' face features from all of each clip
    and from its first `short_seconds` repeated (as `s2f.evaluation.short_clips` and serving do); score them with
    `s2f.evaluation.retrieval_metrics` like the encoder's predictions."""
    model = fit_ridge(spectral_statistics(train_audio), train_embedding, train_speakers, val_fraction, seed)
    clip_seconds = test_audio.shape[1] / sample_rate
    head = test_audio[:, :int(round(short_seconds * sample_rate))]
    short = np.stack([fit_to_clip(clip, clip_seconds, sample_rate) for clip in head])
    return BaselinePredictions(model.predict(short), model.predict(test_audio), model)
