"""Speaker-disjoint train/test split: no speaker's voice or face is seen in training and in evaluation both."""

from __future__ import annotations

import numpy as np
import pandas as pd


def split_speakers(speakers: pd.Series, test_fraction: float, seed: int) -> pd.Series:
    """'train' or 'test' per row; a fixed share of distinct speakers (at least one each side) goes to test."""
    unique = np.array(sorted(speakers.unique()))
    if len(unique) < 2:
        raise ValueError(f"a speaker-disjoint split needs at least 2 speakers, got {len(unique)}")
    n_test = min(max(int(round(len(unique) * test_fraction)), 1), len(unique) - 1)
    test = set(np.random.default_rng(seed).permutation(unique)[:n_test])
    return speakers.map(lambda s: "test" if s in test else "train")
