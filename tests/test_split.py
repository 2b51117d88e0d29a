import pandas as pd
import pytest

from s2f.split import split_speakers


def test_split_is_speaker_disjoint_and_deterministic():
    speakers = pd.Series([f"s{i // 3}" for i in range(30)])
    split = split_speakers(speakers, 0.5, seed=1)
    assert set(speakers[split == "train"]).isdisjoint(speakers[split == "test"])
    assert speakers[split == "test"].nunique() == 5
    assert split.equals(split_speakers(speakers, 0.5, seed=1))


def test_split_needs_two_speakers():
    with pytest.raises(ValueError, match="at least 2 speakers"):
        split_speakers(pd.Series(["a", "a"]), 0.5, seed=0)
