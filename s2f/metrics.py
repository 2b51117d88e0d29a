"""Retrieval, feature-distance and correlation metrics of predicted against true face features (pure numpy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _own_index(query_ids: np.ndarray, gallery_ids: np.ndarray) -> np.ndarray:
    """(Q,) position of each query's identity in the gallery; a query with no gallery entry is an error, not a miss."""
    where = {g: i for i, g in reversed(list(enumerate(gallery_ids)))}  # first occurrence wins
    missing = sorted({str(q) for q in query_ids if q not in where})
    if missing:
        raise ValueError(f"queries whose identity is not in the gallery: {', '.join(missing[:5])}")
    return np.array([where[q] for q in query_ids], dtype=int)


def retrieval_recall(queries: np.ndarray, query_ids: np.ndarray, gallery: np.ndarray, gallery_ids: np.ndarray,
                     ks: Sequence[int]) -> dict[int, float]:
    """Fraction of queries whose own identity is among the `k` gallery entries most cosine-similar to them.

    Ties count against the query (a constant prediction scores chance, never better).
    """
    sims = _unit(queries) @ _unit(gallery).T                      # (Q, G)
    own = _own_index(query_ids, gallery_ids)
    own_sim = sims[np.arange(len(queries)), own][:, None]
    rank = (sims >= own_sim).sum(axis=1) - 1                       # others at least as similar
    return {k: float((rank < k).mean()) for k in ks}


def gallery_recall(queries: np.ndarray, query_ids: np.ndarray, gallery: np.ndarray, gallery_ids: np.ndarray,
                   ks: Sequence[int], gallery_size: int = 100, seed: int = 0, trials: int = 5) -> dict[str, float]:
    """The paper's retrieval: recall@K of each query in a gallery of `gallery_size` identities, its own among them.

    Why a fixed-size gallery: recall@K over ALL test identities falls as the test set grows, so numbers from test sets
    of different sizes (and the paper's) cannot be compared; with a gallery of `gallery_size` identities (the query's
    own plus random others, drawn per query and per trial with `seed`) chance at K is always K / gallery_size.
    When there are at most `gallery_size` identities the gallery is all of them: exactly `retrieval_recall`.
    Ties count against the query. Ks larger than the gallery are left out.

    Returns recall_at_K and chance_at_K for each usable K, and gallery_size (the size actually used).
    """
    if len(set(gallery_ids.tolist())) != len(gallery_ids):
        raise ValueError("gallery_ids must be unique: one gallery entry per identity")
    size = min(gallery_size, len(gallery_ids))
    usable = [k for k in ks if k <= size]
    if size == len(gallery_ids):
        recall = retrieval_recall(queries, query_ids, gallery, gallery_ids, usable)
    else:
        recall = _sampled_recall(queries, query_ids, gallery, gallery_ids, usable, size, seed, trials)
    out: dict[str, float] = {"gallery_size": size}
    for k in usable:
        out[f"recall_at_{k}"] = recall[k]
        out[f"chance_at_{k}"] = k / size
    return out


def _sampled_recall(queries: np.ndarray, query_ids: np.ndarray, gallery: np.ndarray, gallery_ids: np.ndarray,
                    ks: list[int], size: int, seed: int, trials: int) -> dict[int, float]:
    sims = _unit(queries) @ _unit(gallery).T                      # (Q, G)
    q = np.arange(len(queries))
    own = _own_index(query_ids, gallery_ids)
    own_sim = sims[q, own][:, None]                                # (Q, 1)
    rng = np.random.default_rng(seed)
    hits = {k: 0.0 for k in ks}
    for _ in range(trials):
        keys = rng.random(sims.shape)                              # (Q, G) random order of the gallery per query
        keys[q, own] = np.inf                                      # never drawn as an "other"
        others = np.argpartition(keys, size - 1, axis=1)[:, :size - 1]   # (Q, size-1) random other identities
        rank = (np.take_along_axis(sims, others, axis=1) >= own_sim).sum(axis=1)  # (Q,)
        for k in ks:
            hits[k] += float((rank < k).mean())
    return {k: hits[k] / trials for k in ks}


def feature_distances(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    cos = (_unit(pred) * _unit(true)).sum(axis=1)
    return {
        "cosine_mean": float(cos.mean()),
        "l1_mean": float(np.abs(pred - true).sum(axis=1).mean()),
        "l2_mean": float(np.linalg.norm(pred - true, axis=1).mean()),
    }


def pearson_r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two (N,) samples, over the pairs where both are finite.

    nan-safe: returns nan (no warning) when fewer than 2 finite pairs remain or either side is constant, where the
    correlation is undefined; a caller reporting it should say "not measurable", not 0.
    """
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"pearson_r needs samples of the same length, got {a.size} and {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size < 2 or a.min() == a.max() or b.min() == b.max():
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    return float(np.clip((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()), -1.0, 1.0))
