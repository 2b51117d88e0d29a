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


def unseen_speech(manifest: pd.DataFrame, per_speaker: int) -> np.ndarray:
    """(N,) bool: the last `per_speaker` clips (by shard, index) of each speaker of `manifest`, kept out of training.

    Why: Wav2Pix's identity protocol asks whether a face generated from UNSEEN speech of a SEEN speaker is recognised
    as that speaker; the GAN trainers leave these clips out and evaluation generates from them. Deterministic (no
    seed): the trainer and the evaluator must pick the same clips. A speaker with fewer than per_speaker + 1 clips
    keeps all of them for training (it would otherwise be unseen).
    """
    if per_speaker == 0:
        return np.zeros(len(manifest), bool)
    order = manifest.reset_index(drop=True).sort_values(["speaker", "shard", "index"])
    rank_from_end = order.groupby("speaker").cumcount(ascending=False)
    count = order.groupby("speaker")["speaker"].transform("size")
    held = (rank_from_end < per_speaker) & (count > per_speaker)
    return held.sort_index().to_numpy()


def validation_speakers(speakers: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """(N,) bool: the rows of the validation speakers, a `fraction` of the distinct speakers of `speakers` (at least
    one when fraction > 0, and at least one left out of it), drawn with `seed`.

    Called on the TRAINING split only, so validation speakers are disjoint from the test speakers by construction,
    and from the training remainder because whole speakers are held out.
    """
    speakers = np.asarray(speakers)
    unique = np.array(sorted(set(speakers.tolist())))
    if fraction <= 0:
        return np.zeros(len(speakers), bool)
    if len(unique) < 2:
        raise ValueError(f"a validation split needs at least 2 training speakers, got {len(unique)}")
    n_val = min(max(int(round(len(unique) * fraction)), 1), len(unique) - 1)
    held = np.random.default_rng(seed).permutation(unique)[:n_val]
    return np.isin(speakers, held)
