import numpy as np
import pandas as pd
import pytest

from s2f.split import split_speakers, validation_speakers


def test_split_is_speaker_disjoint_and_deterministic():
    speakers = pd.Series([f"s{i // 3}" for i in range(30)])
    split = split_speakers(speakers, 0.5, seed=1)
    assert set(speakers[split == "train"]).isdisjoint(speakers[split == "test"])
    assert speakers[split == "test"].nunique() == 5
    assert split.equals(split_speakers(speakers, 0.5, seed=1))


def test_split_needs_two_speakers():
    with pytest.raises(ValueError, match="at least 2 speakers"):
        split_speakers(pd.Series(["a", "a"]), 0.5, seed=0)


def test_validation_speakers_come_from_the_training_speakers_only():
    speakers = pd.Series([f"s{i // 5}" for i in range(200)])        # 40 speakers, 5 clips each
    split = split_speakers(speakers, 0.5, seed=7)
    train = speakers[split == "train"].to_numpy()
    held = validation_speakers(train, 0.2, seed=0)
    val, rest, test = set(train[held]), set(train[~held]), set(speakers[split == "test"])
    assert len(val) == 4 and val.isdisjoint(rest) and val.isdisjoint(test) and rest.isdisjoint(test)
    assert val | rest == set(train)
    assert np.array_equal(held, validation_speakers(train, 0.2, seed=0))          # deterministic by seed
    assert not np.array_equal(held, validation_speakers(train, 0.2, seed=1))


@pytest.mark.parametrize("fraction, n_val", [(0.0, 0), (0.01, 1), (0.99, 2)])
def test_validation_holds_out_at_least_one_speaker_and_leaves_one(fraction, n_val):
    speakers = np.array(["a", "a", "b", "c", "c"])
    held = validation_speakers(speakers, fraction, seed=0)
    assert len(set(speakers[held])) == n_val
