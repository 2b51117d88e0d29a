"""Retrieval and feature-distance metrics of predicted against true face features (pure numpy)."""

from __future__ import annotations

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def retrieval_recall(queries: np.ndarray, query_ids: np.ndarray, gallery: np.ndarray, gallery_ids: np.ndarray,
                     ks: list[int]) -> dict[int, float]:
    """Fraction of queries whose own identity is among the `k` gallery entries most cosine-similar to them.

    Ties count against the query (a constant prediction scores chance, never better).
    """
    sims = _unit(queries) @ _unit(gallery).T                      # (Q, G)
    own = np.array([np.flatnonzero(gallery_ids == q)[0] for q in query_ids])
    own_sim = sims[np.arange(len(queries)), own][:, None]
    rank = (sims >= own_sim).sum(axis=1) - 1                       # others at least as similar
    return {k: float((rank < k).mean()) for k in ks}


def feature_distances(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    cos = (_unit(pred) * _unit(true)).sum(axis=1)
    return {
        "cosine_mean": float(cos.mean()),
        "l1_mean": float(np.abs(pred - true).sum(axis=1).mean()),
        "l2_mean": float(np.linalg.norm(pred - true, axis=1).mean()),
    }
